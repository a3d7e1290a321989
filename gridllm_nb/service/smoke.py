"""``python -m gridllm_nb.service.smoke``: can this machine run the built-in models?

Setup (``make``, Binder's ``postBuild``) ends with this check, so a
llama-cpp-python build that cannot run here stops setup with one line that
names the cause and the fix, instead of a test failing ten minutes later.
Each model generates 16 tokens in a runner process, exactly as the service
runs it; a crash in native code is reported, never suffered.
"""

from __future__ import annotations

import sys
import threading
import time

from .backends.base import BackendError, Finish, GenerationRequest
from .registry import load_registry
from .runners import RunnerBackend

__all__ = ["main", "smoke"]

_FIXES = {
    "SIGILL": "this CPU lacks an instruction the llama-cpp-python build uses (the portable build needs AVX2); "
              "rebuild it for this CPU: LLAMA_FLAVOUR=native make setup",
    "SIGSEGV": "llama.cpp crashed in native code; a wheel built for another CPU (natively) does this. "
               "Remove ~/.cache/gridllm_nb/wheels and run `make setup` to rebuild it portably",
}
_DEFAULT_FIX = "see the lines above; reinstall with `make clean setup`"


def smoke(tags: list[str] | None = None, tokens: int = 16) -> list[str]:
    """One line per built-in model that cannot generate here (empty: all is well)."""
    registry = load_registry()
    problems = []
    for tag in tags or [t for t, spec in registry.items() if spec.backend == "llama_cpp"]:
        backend = RunnerBackend(registry[tag])
        start = time.perf_counter()
        try:
            pieces = [p for p in backend.generate(GenerationRequest("Say hello.", max_tokens=tokens, seed=1),
                                                  threading.Event()) if not isinstance(p, Finish)]
            if not "".join(pieces).strip():
                problems.append(f"{tag} generated no text")
            else:
                print(f"ok: {tag} generated {len(pieces)} pieces in {time.perf_counter() - start:.1f} s", flush=True)
        except BackendError as exc:
            reason = str(exc)
            fix = next((f for sig, f in _FIXES.items() if sig in reason), _DEFAULT_FIX)
            problems.append(f"{reason}. Fix: {fix}")
        finally:
            backend.close()
    return problems


def main() -> int:
    try:
        import llama_cpp

        # Which SIMD the engine was built for: a portable wheel lists no AVX512.
        print(f"llama.cpp: {llama_cpp.llama_print_system_info().decode(errors='replace').strip()}", flush=True)
    except ImportError:
        pass
    problems = smoke(sys.argv[1:] or None)
    for line in problems:
        print(f"gridllm_nb smoke test failed: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
