"""llama-cpp-python: the embedded engine, GGUF files shipped by PyPI packages.

This module is the engine itself and runs inside a model runner process
(``service/runners``), never in the service: native code that crashes takes
down one runner, not the API.

Chat models go through ``create_chat_completion`` so the GGUF's own chat
template is applied. Base models (Gemma 3 270M) only continue text: given a
bare question they repeat it or ramble, so a tag may name a completion
``template`` (a short question/answer frame) with ``stop`` strings that end
the answer where the frame's next question would begin. Special tokens
(``<start_of_image>``, ``<|im_start|>``, ``<unused0>``...) are never sampled:
they are markup, not text. Per-tag sampling defaults (``temperature``,
``repeat_penalty``...) come from the registry; a job's options override them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..registry import ModelSpec, find_packaged_gguf
from .base import BackendError, Finish, GenerationRequest

__all__ = ["LlamaCppBackend", "apply_template", "resolve_model_path"]

# User-defined tokens that are markup ("<start_of_image>", "[multimodal]"),
# as opposed to the whitespace runs some vocabularies also define.
_MARKUP_TOKEN = re.compile(rb"<[^\s<>]+>|\[[a-z_]+\]")


def resolve_model_path(spec: ModelSpec) -> Path:
    """The GGUF file of a llama_cpp entry: an explicit ``path`` or a package's file."""
    settings = spec.settings
    if settings.get("path"):
        path = Path(str(settings["path"])).expanduser()
        if not path.is_file():
            raise BackendError(f"model file for {spec.tag!r} not found: {path}")
        return path
    package = str(settings.get("package", ""))
    found = find_packaged_gguf(package, settings.get("module"))
    if found is None:
        raise BackendError(f"no GGUF file found in package {package!r} for {spec.tag!r}; pip install {package}")
    return found


def apply_template(template: str | None, prompt: str, system: str | None) -> str:
    """The text a completion model continues.

    ``{prompt}`` and ``{system}`` are replaced literally (``str.format`` would
    trip over braces in the template's own text); a system prompt the
    template has no place for goes first.
    """
    if not template:
        return f"{system}\n\n{prompt}" if system else prompt
    text = template.replace("{system}", system or "") if "{system}" in template else template
    text = text.replace("{prompt}", prompt)
    if system and "{system}" not in template:
        text = f"{system}\n\n{text}"
    return text


class LlamaCppBackend:
    """One ``Llama`` instance (a runner process serves one job at a time)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._llm: Any = None
        self._banned: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendError("llama-cpp-python is not installed: pip install 'gridllm_nb[local]'") from exc
        settings = self.spec.settings
        kwargs: dict[str, Any] = {"n_ctx": int(settings.get("n_ctx", 2048)), "verbose": False}
        if settings.get("n_threads"):
            kwargs["n_threads"] = int(settings["n_threads"])
        if settings.get("n_batch"):
            kwargs["n_batch"] = int(settings["n_batch"])
        try:
            return Llama(model_path=str(resolve_model_path(self.spec)), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(f"cannot load {self.spec.tag!r}: {exc}") from exc

    def warm_up(self) -> None:
        """Load the model now, so the first job's timings do not include loading."""
        with self._lock:
            if self._llm is None:
                self._llm = self._load()
                self._banned = _special_token_ids(self._llm)

    def _sampling(self, request: GenerationRequest) -> dict[str, Any]:
        """The job's options over the tag's defaults over llama.cpp's."""
        settings = self.spec.settings
        kwargs: dict[str, Any] = {"max_tokens": request.max_tokens, "stream": True}
        for key in ("temperature", "top_p", "seed", "repeat_penalty"):
            value = getattr(request, key)
            if value is None:
                value = settings.get(key)
            if value is not None:
                kwargs[key] = value
        stop = [*settings.get("stop", ()), *request.stop] if self._framed(request) else list(request.stop)
        if stop:
            kwargs["stop"] = list(dict.fromkeys(stop))
        if self._banned is not None and len(self._banned):
            from llama_cpp import LogitsProcessorList

            banned = self._banned

            def ban_special(_ids: Any, scores: Any) -> Any:
                scores[banned] = -float("inf")
                return scores

            kwargs["logits_processor"] = LogitsProcessorList([ban_special])
        return kwargs

    def _framed(self, request: GenerationRequest) -> bool:
        template = request.template if request.template is not None else self.spec.settings.get("template")
        return self.spec.mode == "completion" and bool(template)

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str | Finish]:
        self.warm_up()
        llm = self._llm
        kwargs = self._sampling(request)
        if self.spec.mode == "chat":
            messages = [{"role": "user", "content": request.prompt}]
            if request.system:
                messages.insert(0, {"role": "system", "content": request.system})
            stream = llm.create_chat_completion(messages=messages, **kwargs)
            pick = lambda choice: choice.get("delta", {}).get("content")
        else:
            template = request.template if request.template is not None else self.spec.settings.get("template")
            stream = llm.create_completion(prompt=apply_template(template, request.prompt, request.system), **kwargs)
            pick = lambda choice: choice.get("text")
        framed = self._framed(request)
        text: list[str] = []
        finish = None
        try:
            for chunk in stream:
                if cancel.is_set():
                    return
                choice = chunk["choices"][0]
                finish = choice.get("finish_reason") or finish
                piece = pick(choice)
                if piece and framed and not text:
                    piece = piece.lstrip()  # the frame's "Answer:" is followed by a space
                if piece:
                    text.append(piece)
                    yield piece
        except ValueError as exc:  # e.g. prompt longer than the context
            raise BackendError(str(exc)) from exc
        finally:
            stream.close()  # stops llama.cpp decoding at once
        answer = "".join(text)
        tokens = len(llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False)) if answer else 0
        yield Finish("length" if finish == "length" else "stop", tokens)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        closer = getattr(llm, "close", None)
        if closer:
            closer()


def _special_token_ids(llm: Any) -> Any:
    """Ids of control and markup tokens, except end-of-text (the model must be able to stop)."""
    import llama_cpp
    import numpy as np

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    keep = {llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab)}
    control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    user = llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    banned = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        if token in keep:
            continue
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if attr & control or (attr & user and _MARKUP_TOKEN.fullmatch(llm.detokenize([token], special=True))):
            banned.append(token)
    return np.array(banned, dtype=np.intc)
