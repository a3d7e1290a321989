#!/usr/bin/env bash
# Build llama-cpp-python's wheel once into a cache outside the clone, and
# print the path of the cached wheel.
#
# The wheel is built *portably*: GGML_NATIVE=OFF gives llama.cpp's x86-64-v3
# baseline (AVX2, FMA, F16C) instead of whatever the build machine's CPU
# offers. A native build on a CPU with AVX-512/AMX produced kernels that died
# with SIGSEGV on the first ordinary prompt; a wheel must run on every machine
# it is later installed on (Binder, CI, a colleague's laptop from a shared
# cache). The cache folder is named after the version *and* the flavour, so a
# wheel of another flavour (an old native one) is never picked up by mistake.
#
# LLAMA_FLAVOUR=native builds the machine-specific flavour, for
# benchmarks/runtime.py only; setup never uses it.
set -euo pipefail
: "${WHEEL_CACHE:?}" "${LLAMA_CPP:?}" "${PYTHON:=python3}"
flavour="${LLAMA_FLAVOUR:-portable}"
case "$flavour" in
  portable) cmake_args="-DGGML_NATIVE=OFF" ;;
  native)   cmake_args="-DGGML_NATIVE=ON" ;;
  *) echo "LLAMA_FLAVOUR must be portable or native, not '$flavour'" >&2; exit 2 ;;
esac
dir="$WHEEL_CACHE/llama-cpp-python-$LLAMA_CPP-$flavour-$(uname -m)"
mkdir -p "$dir"
if ! ls "$dir"/llama_cpp_python-"$LLAMA_CPP"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP ($flavour, $cmake_args) from source: once, about 10 min on 2 cores; cached in $dir" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # --no-cache-dir: pip's own wheel cache is keyed by the sdist, not by
  # CMAKE_ARGS, so it could hand back a wheel of another flavour.
  CMAKE_ARGS="$cmake_args" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PYTHON" -m pip wheel -q --no-cache-dir --no-deps "llama-cpp-python==$LLAMA_CPP" -w "$tmp" >&2
  mv "$tmp"/llama_cpp_python-*.whl "$dir"/
fi
ls "$dir"/llama_cpp_python-"$LLAMA_CPP"-*.whl | head -n1
