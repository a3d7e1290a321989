"""Tokens/s of the portable llama-cpp-python wheel vs a native one, side by side.

``scripts/llama-wheel.sh`` builds llama-cpp-python *portably*
(``GGML_NATIVE=OFF``: llama.cpp's x86-64-v3 baseline, AVX2/FMA/F16C, no
AVX-512), because a native build (``GGML_NATIVE=ON``, every instruction set
of the build machine) died with SIGSEGV on a CPU with AVX-512 and AMX. This
measures what that choice costs on a machine where the native build works.

Both flavours' wheels are taken from the wheel cache
(``$WHEEL_CACHE`` or ``~/.cache/gridllm_nb/wheels``, folders
``llama-cpp-python-<version>-<flavour>-<arch>``), each is installed with
``pip install --no-deps --target <tmpdir>``, and every measurement runs in a
fresh subprocess whose ``PYTHONPATH`` puts that folder first, so it shadows
the virtualenv's own ``llama_cpp`` (the subprocess checks that
``llama_cpp.__file__`` is under the folder, and reports the first line of
``llama_print_system_info()``: the SIMD the build was compiled for).

For each built-in model (``smollm2:135m``, ``gemma3:270m``), with the
thread count left at the default (what the service uses: llama-cpp-python's
``Llama`` takes ``n_threads = cpu_count // 2`` for generation and
``n_threads_batch = cpu_count`` for prompt batches unless told otherwise) and
with 2 threads for both:

* prompt processing tokens/s: one ~200-token prompt evaluated from an empty
  cache (after one warm-up evaluation; median of 5 in the process);
* generation tokens/s: ``create_completion`` with 128 max tokens,
  temperature 0, a fixed seed, no repeat penalty: Gemma (a base model)
  continues a counting prompt so it does not stop early; SmolLM2 continues a
  plain prose prompt. The tokens actually produced (``usage``) are divided by
  the wall time of the call minus the prompt's evaluation time (llama.cpp's
  own ``t_p_eval_ms``), so Python's sampling overhead is included, as a user
  sees it. llama.cpp's own decode timer (``t_eval_ms``, kernels only) is
  reported alongside.

Flavours are interleaved (portable, native, portable, native, ...; one
process each) so that drift in the machine's load hits both alike, and the
median of the repeats is reported, with the ratio portable/native.

    .venv/bin/python benchmarks/runtime.py [--repeats 3] [--gen-tokens 128] [--prompt-tokens 200]

If only one flavour is in the cache, this says which and exits 0; build the
other with e.g.::

    LLAMA_FLAVOUR=native WHEEL_CACHE=~/.cache/gridllm_nb/wheels LLAMA_CPP=0.3.36 \\
        PYTHON=.venv/bin/python scripts/llama-wheel.sh
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

TAGS = ("smollm2:135m", "gemma3:270m")
SEED = 42
FLAVOUR_ORDER = ("portable", "native")
FOLDER = re.compile(r"^llama-cpp-python-(?P<version>.+)-(?P<flavour>[A-Za-z0-9_]+)-(?P<arch>[A-Za-z0-9_]+)$")

# Filler for the prompt-processing test, cut to exactly --prompt-tokens tokens.
FILLER = ("The lighthouse stood on a rock at the mouth of the bay, and every evening the keeper climbed the "
          "one hundred and twelve steps to light the lamp. Ships passing in the night read its signal, two "
          "short flashes and one long, and knew where the reef lay beneath the dark water. ")
# Generation prompts: a base model counts on without stopping; SmolLM2 continues prose.
COUNTING = "Counting from one: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,"
PROSE = "Chapter One\n\nThe lighthouse keeper had lived alone on the island for eleven years when"


# --------------------------------------------------------------------------- worker (one subprocess)

def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement with whichever llama_cpp PYTHONPATH gives; the result as a dict."""
    import llama_cpp
    from llama_cpp import Llama

    target = Path(spec["target"]).resolve()
    module = Path(llama_cpp.__file__).resolve()
    if target not in module.parents:
        return {"error": f"llama_cpp imported from {module}, not from {target}"}
    system_info = llama_cpp.llama_print_system_info().decode().strip().splitlines()[0]

    kwargs: dict[str, Any] = {"n_ctx": 2048, "seed": SEED, "verbose": False}
    if spec["threads"]:
        kwargs["n_threads"] = kwargs["n_threads_batch"] = int(spec["threads"])
    llm = Llama(model_path=spec["model_path"], **kwargs)

    # Prompt processing: exactly N tokens (BOS included) from an empty cache.
    text = FILLER
    while len(llm.tokenize(text.encode())) < spec["prompt_tokens"]:
        text += FILLER
    tokens = llm.tokenize(text.encode())[: spec["prompt_tokens"]]
    llm.reset()
    llm.eval(tokens)  # warm-up: pages the mmapped weights in, allocates the compute buffers
    pp_times = []
    for _ in range(5):
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens)
        pp_times.append(time.perf_counter() - start)
    prompt_tps = len(tokens) / statistics.median(pp_times)

    # Generation.
    prompt = COUNTING if spec["prompt"] == "counting" else PROSE
    options = {"temperature": 0.0, "seed": SEED, "repeat_penalty": 1.0}
    llm.reset()
    llm.create_completion(prompt, max_tokens=8, **options)  # warm-up of the single-token path
    llm.reset()
    ctx = llm._ctx.ctx
    llama_cpp.llama_perf_context_reset(ctx)
    start = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=spec["gen_tokens"], **options)
    wall = time.perf_counter() - start
    perf = llama_cpp.llama_perf_context(ctx)
    produced = int(out["usage"]["completion_tokens"])
    prompt_s = perf.t_p_eval_ms / 1000
    return {
        "module": str(module),
        "system_info": system_info,
        "n_threads": llm.n_threads,
        "n_threads_batch": llm.n_threads_batch,
        "prompt_tokens": len(tokens),
        "prompt_tps": prompt_tps,
        "gen_tokens": produced,
        "finish_reason": out["choices"][0]["finish_reason"],
        "gen_tps": produced / max(1e-9, wall - prompt_s),
        "decode_tps": perf.n_eval / (perf.t_eval_ms / 1000) if perf.t_eval_ms > 0 else 0.0,
        "text": out["choices"][0]["text"][:80],
    }


# --------------------------------------------------------------------------- parent

def wheel_cache() -> Path:
    return Path(os.environ.get("WHEEL_CACHE") or Path.home() / ".cache" / "gridllm_nb" / "wheels").expanduser()


def find_wheels(cache: Path, version: str | None) -> tuple[str | None, dict[str, Path]]:
    """(version, {flavour: wheel}) for this machine's architecture."""
    found: dict[str, dict[str, Path]] = {}
    arch = platform.machine()
    for folder in sorted(cache.glob("llama-cpp-python-*")) if cache.is_dir() else []:
        match = FOLDER.match(folder.name)
        if not match or match["arch"] != arch:
            continue
        wheels = sorted(folder.glob(f"llama_cpp_python-{match['version']}-*.whl"))
        if wheels:
            found.setdefault(match["version"], {})[match["flavour"]] = wheels[0]
    if not found:
        return version, {}
    if version is None:
        try:  # prefer the version the virtualenv has, then the one with most flavours
            installed = importlib.metadata.version("llama-cpp-python")
        except importlib.metadata.PackageNotFoundError:
            installed = None
        version = installed if installed in found else max(found, key=lambda v: (len(found[v]), v))
    flavours = found.get(version, {})
    ordered = [f for f in FLAVOUR_ORDER if f in flavours] + sorted(f for f in flavours if f not in FLAVOUR_ORDER)
    return version, {f: flavours[f] for f in ordered}


def install(wheel: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)], check=True)


def run_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec["target"], env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                              check=False, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode < 0:
        return {"error": f"crashed ({signal.Signals(-proc.returncode).name})"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per flavour and setting (median reported)")
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--threads", default="default,2",
                        help="comma-separated thread counts; 'default' leaves llama-cpp-python's choice")
    parser.add_argument("--models", default=",".join(TAGS), help="comma-separated registry tags")
    parser.add_argument("--version", default=None, help="llama-cpp-python version (default: the venv's)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per measurement process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    sys.path.insert(0, str(ROOT))
    from gridllm_nb.service.backends.llama_cpp import resolve_model_path
    from gridllm_nb.service.registry import load_registry

    cache = wheel_cache()
    version, wheels = find_wheels(cache, args.version)
    if len(wheels) < 2:
        have = ", ".join(f"{f} ({w})" for f, w in wheels.items()) or "none"
        missing = next((f for f in FLAVOUR_ORDER if f not in wheels), "native")
        print(f"Need two llama-cpp-python flavours in {cache} to compare; found: {have}.\n"
              f"Build the {missing} one with:\n\n"
              f"    LLAMA_FLAVOUR={missing} WHEEL_CACHE={cache} LLAMA_CPP={version or '0.3.36'} "
              f"PYTHON=.venv/bin/python scripts/llama-wheel.sh")
        return 0

    registry = load_registry()
    models = {}
    for tag in [t.strip() for t in args.models.split(",") if t.strip()]:
        spec = registry.get(tag)
        if spec is None:
            print(f"{tag}: not in the registry (is its package installed?); skipped", file=sys.stderr)
            continue
        models[tag] = str(resolve_model_path(spec))
    threads = [None if t.strip() == "default" else int(t) for t in args.threads.split(",") if t.strip()]

    workdir = Path(tempfile.mkdtemp(prefix="gridllm_runtime_")).resolve()
    results: dict[tuple[str, Any, str], list[dict[str, Any]]] = {}
    errors: list[str] = []
    try:
        targets = {}
        for flavour, wheel in wheels.items():
            targets[flavour] = workdir / flavour
            print(f"installing {flavour}: {wheel}", file=sys.stderr)
            install(wheel, targets[flavour])
        load_start = os.getloadavg()
        started = time.perf_counter()
        for repeat in range(args.repeats):
            for tag, path in models.items():
                for n in threads:
                    for flavour in wheels:  # interleaved: portable, native, portable, native, ...
                        spec = {"target": str(targets[flavour]), "model_path": path, "threads": n,
                                "prompt": "counting" if tag.startswith("gemma") else "prose",
                                "prompt_tokens": args.prompt_tokens, "gen_tokens": args.gen_tokens}
                        result = run_worker(spec, args.timeout)
                        label = f"run {repeat + 1}/{args.repeats} {tag} threads={n or 'default'} {flavour}"
                        if "error" in result:
                            errors.append(f"{label}: {result['error']}")
                            print(f"{label}: {result['error']}", file=sys.stderr)
                        else:
                            print(f"{label}: prompt {result['prompt_tps']:.0f} tok/s, gen {result['gen_tps']:.1f} "
                                  f"tok/s ({result['gen_tokens']} tokens)", file=sys.stderr)
                        results.setdefault((tag, n, flavour), []).append(result)
        elapsed = time.perf_counter() - started
        load_end = os.getloadavg()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def ok(tag: str, n: Any, flavour: str) -> list[dict[str, Any]]:
        return [r for r in results.get((tag, n, flavour), []) if "error" not in r]

    def med(tag: str, n: Any, flavour: str, key: str) -> float | None:
        values = [r[key] for r in ok(tag, n, flavour)]
        return statistics.median(values) if values else None

    def fmt(value: float | None, digits: int = 1) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    print(f"\n## llama-cpp-python {version}: portable vs native build "
          f"(median of {args.repeats} interleaved runs, {args.prompt_tokens}-token prompt, "
          f"{args.gen_tokens} generated tokens, temperature 0, seed {SEED})\n")
    print("SIMD each build was compiled for (first line of `llama_cpp.llama_print_system_info()`):\n")
    for flavour, wheel in wheels.items():
        info = next((r["system_info"] for rs in results.values() for r in rs
                     if "system_info" in r and Path(r["module"]).is_relative_to(workdir / flavour)), "n/a")
        print(f"* {flavour} (`{wheel.parent.name}`): `{info}`")
    print()

    reference = "native" if "native" in wheels else list(wheels)[-1]
    print("| model | threads | flavour | prompt tok/s | gen tok/s | gen ratio (portable/native) |")
    print("|---|---|---|---:|---:|---:|")
    for tag in models:
        for n in threads:
            ref_gen = med(tag, n, reference, "gen_tps")
            for flavour in wheels:
                sample = (ok(tag, n, flavour) or [{}])[0]
                label = str(n) if n else f"default ({sample.get('n_threads', '?')} gen / " \
                                         f"{sample.get('n_threads_batch', '?')} batch)"
                gen = med(tag, n, flavour, "gen_tps")
                if flavour == reference:
                    ratio = "1.00 (ref)"
                else:
                    ratio = fmt(gen / ref_gen, 2) if gen and ref_gen else "n/a"
                print(f"| {tag} | {label} | {flavour} | {fmt(med(tag, n, flavour, 'prompt_tps'), 0)} | "
                      f"{fmt(gen)} | {ratio} |")

    print("\nDetails: prompt ratio, tokens actually produced (and why generation stopped), llama.cpp's own "
          "decode rate (kernels only, without Python's sampling), and each run's gen tok/s.\n")
    print("| model | threads | flavour | prompt ratio | tokens produced | llama.cpp decode tok/s | gen tok/s per run |")
    print("|---|---|---|---:|---|---:|---|")
    for tag in models:
        for n in threads:
            ref_pp = med(tag, n, reference, "prompt_tps")
            for flavour in wheels:
                runs = ok(tag, n, flavour)
                pp = med(tag, n, flavour, "prompt_tps")
                pp_ratio = "1.00 (ref)" if flavour == reference else (fmt(pp / ref_pp, 2) if pp and ref_pp else "n/a")
                produced = sorted({f"{r['gen_tokens']} ({r['finish_reason']})" for r in runs}) or ["n/a"]
                per_run = ", ".join(f"{r['gen_tps']:.1f}" for r in runs) or "n/a"
                print(f"| {tag} | {n or 'default'} | {flavour} | {pp_ratio} | {'; '.join(produced)} | "
                      f"{fmt(med(tag, n, flavour, 'decode_tps'))} | {per_run} |")

    if errors:
        print("\nFailed runs:\n")
        for line in errors:
            print(f"* {line}")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    print(f"\n(CPU: {cpu}, {os.cpu_count()} CPUs; {elapsed:.0f} s of measurement; load average "
          f"{load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end)")
    return 1 if errors and not any(ok(*key) for key in results) else 0


if __name__ == "__main__":
    sys.exit(main())
