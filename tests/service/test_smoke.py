"""Setup's smoke test: every built-in model generates here, or setup stops with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gridllm_nb.service import smoke

pytest.importorskip("llama_cpp")


@pytest.mark.models
def test_the_builtin_models_pass_on_this_machine() -> None:
    done = subprocess.run([sys.executable, "-m", "gridllm_nb.service.smoke"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ok: smollm2:135m" in done.stdout


@pytest.mark.parametrize(("signal_name", "fix"), [("SEGV", "rebuild it portably"), ("ILL", "LLAMA_FLAVOUR=native")])
def test_a_crashing_engine_stops_setup_with_cause_and_fix(tmp_path, monkeypatch, capsys, signal_name, fix) -> None:
    crashing = tmp_path / "python"
    crashing.write_text(f"#!/bin/sh\nkill -{signal_name} $$\n")
    crashing.chmod(0o755)
    monkeypatch.setattr(sys, "argv", ["smoke", "smollm2:135m"])
    monkeypatch.setattr(sys, "executable", str(crashing))  # the runner process dies as a bad wheel would
    assert smoke.main() == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"model process for smollm2:135m crashed (SIG{signal_name}) while loading" in line
    assert fix in line
