#!/usr/bin/env bash
# Build llama-cpp-python's wheel once into a cache outside the clone.
# It compiles llama.cpp (several minutes on 2 cores); every later setup,
# in this clone or any other on this machine, installs the cached wheel.
set -euo pipefail
: "${WHEEL_CACHE:?}" "${LLAMA_CPP:?}" "${PYTHON:=python3}"
mkdir -p "$WHEEL_CACHE"
if ls "$WHEEL_CACHE"/llama_cpp_python-"$LLAMA_CPP"-*.whl >/dev/null 2>&1; then
  exit 0
fi
echo "building llama-cpp-python $LLAMA_CPP from source (once; cached in $WHEEL_CACHE)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  "$PYTHON" -m pip wheel -q --no-deps "llama-cpp-python==$LLAMA_CPP" -w "$tmp"
mv "$tmp"/llama_cpp_python-*.whl "$WHEEL_CACHE"/
