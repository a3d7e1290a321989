"""The built-in models answer everyday prompts rather than echo or loop.

Ten fixed prompts (facts, a list, a translation, a one-line code task) go to
each built-in model through the real service with the tag's own defaults
(question frame, repeat penalty, sampling), a fixed seed, and 128 tokens.
No answer may contain its prompt verbatim, repeat a sentence of six or more
words three times, or show special-token markup; the median answer must
end on its own, before the token limit.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter

import httpx
import pytest

from tests.service.service_support import poll_job, terminal

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.models

PROMPTS = [
    "What is the capital of France?",
    "Name three fruits.",
    "Translate 'good morning' into Spanish.",
    "Write a Python one-liner that reverses a string s.",
    "Who wrote Romeo and Juliet?",
    "How many days are in a week?",
    "List three colours of the rainbow.",
    "What is 12 plus 7?",
    "In one sentence: why is the sky blue?",
    "What do bees make?",
]
MAX_TOKENS = 128


def looping_sentences(text: str) -> list[str]:
    """Sentences of 6+ words that occur three times or more."""
    sentences = [" ".join(s.lower().split()) for s in re.split(r"[.!?\n]+", text)]
    counts = Counter(s for s in sentences if len(s.split()) >= 6)
    return [s for s, n in counts.items() if n >= 3]


def test_looping_sentences_finds_a_loop() -> None:
    assert looping_sentences("I was in the good mood today. " * 3) == ["i was in the good mood today"]
    assert looping_sentences("Red. Red. Red. One two three four five six.") == []


@pytest.mark.parametrize("tag", ["smollm2:135m", "gemma3:270m"])
def test_builtin_models_answer_everyday_prompts(service_url: str, tag: str) -> None:
    if tag not in httpx.get(f"{service_url}/health").json()["models"]:
        pytest.skip(f"{tag} is not installed")
    ids = []
    for prompt in PROMPTS:
        body = {"app": "gridrepublic:text-inference", "tag": tag,
                "commandLine": json.dumps({"inputs": [prompt], "options": {"seed": 7, "max_tokens": MAX_TOKENS}})}
        ids.append(httpx.post(f"{service_url}/jobs", json=body, timeout=10).json()["ids"][0])
    answers = [poll_job(service_url, job_id, terminal, timeout=300)["states"]["default"] for job_id in ids]

    for prompt, answer in zip(PROMPTS, answers):
        text = answer["log"]
        assert answer["status"] == "completed", (prompt, answer)
        assert text.strip(), f"{tag} gave no answer to {prompt!r}"
        assert prompt.lower() not in text.lower(), f"{tag} echoed {prompt!r}: {text!r}"
        assert not looping_sentences(text), f"{tag} loops on {prompt!r}: {text!r}"
        assert "<start_of_" not in text and "<end_of_" not in text and "<|im_" not in text, text
    assert statistics.median(a["tokens"] for a in answers) < MAX_TOKENS
    assert sum(a["finish"] == "stop" for a in answers) >= len(PROMPTS) // 2 + 1
