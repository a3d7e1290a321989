"""The magic's settings (``notebook.settings``): ``c.GridLLM.*``, the environment and ``%gridllm config``."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    magics_of,
    one_line_error,
)


def test_extension_via_config() -> None:
    from traitlets.config import Config

    from gridllm_nb.notebook.settings import GridLLM

    c = Config()
    c.GridLLM.default_models = ["a:1"]
    c.GridLLM.poll_interval = 0.5
    s = GridLLM(config=c)
    assert s.default_models == ["a:1"] and s.poll_interval == 0.5


def test_default_models_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb.notebook.settings import GridLLM

    monkeypatch.setenv("GRIDLLM_DEFAULT_MODELS", "a:1, b:2")
    assert GridLLM().default_models == ["a:1", "b:2"]


def test_line_config_shows_and_sets(ip: Any, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLLM_API_TOKEN", "sekrit-token-42")
    ip.run_line_magic("gridllm", "config url=http://127.0.0.1:9/remotejobs/v2 models=a:1,b:2 "
                                 "timeout=30 options='{\"max_tokens\":8}' format=code history=false")
    out = capsys.readouterr().out
    assert "endpoint: http://127.0.0.1:9/remotejobs/v2" in out
    assert "GRIDLLM_API_TOKEN is set" in out and "sekrit" not in out
    s = magics_of(ip).settings
    assert s.default_models == ["a:1", "b:2"] and s.timeout == 30.0 and s.options == {"max_tokens": 8}
    assert s.default_format == "code" and s.history is False


def test_line_config_errors(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown setting" in one_line_error(ip, "%gridllm config colour=red", capsys)
    assert "wants a number" in one_line_error(ip, "%gridllm config timeout=soon", capsys)
    assert "not an http" in one_line_error(ip, "%gridllm config url=ftp://x", capsys)



def test_ipython_config_magic_reaches_the_loaded_settings(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # ``%config`` is IPython's own way to set a configurable: it only reaches those the shell lists.
    ip.run_line_magic("config", "GridLLM.history = False")
    ip.run_line_magic("config", "GridLLM.default_models = ['a:1']")
    s = magics_of(ip).settings
    assert s.history is False and s.default_models == ["a:1"]
    ip.run_line_magic("config", "GridLLM")
    assert "history" in capsys.readouterr().out  # its settings listed with their help


def test_unloading_the_extension_lets_its_settings_go(ip: Any) -> None:
    settings = magics_of(ip).settings
    assert settings in ip.configurables
    ip.run_line_magic("unload_ext", "gridllm_nb")
    try:
        assert settings not in ip.configurables
    finally:
        ip.run_line_magic("load_ext", "gridllm_nb")
