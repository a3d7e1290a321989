"""The one interpolation function: names, In/Out, {{ }}, and brace text left alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridllm_nb.core.interpolate import interpolate

NS = {"name": "France", "n": 3, "d": {"a": 1}, "In": ["", "x = 1", "print(x)"], "Out": {1: 42}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("capital of {name}?", "capital of France?"),
        ("{n} items", "3 items"),
        ("{ name }", "{ name }"),  # not a bare name: left alone
        ("{undefined} stays", "{undefined} stays"),
        ("{In[1]} then {In[-1]}", "x = 1 then print(x)"),
        ("{Out[1]}", "42"),
        ("{Out[7]} missing", "{Out[7]} missing"),
        ("{In[99]}", "{In[99]}"),
        ("{{name}}", "{name}"),
        ("{{{name}}}", "{France}"),
        ("literal {{ and }} braces", "literal { and } braces"),
        ("{k: v for k, v in d.items()}", "{k: v for k, v in d.items()}"),
        ('{"a": {"b": 1}}', '{"a": {"b": 1}}'),
        ('{"a": {"b": {"c": [1, {}]}}}', '{"a": {"b": {"c": [1, {}]}}}'),
        ("def f(): return {}", "def f(): return {}"),
        ("{d.keys}", "{d.keys}"),
        ("{d[0]}", "{d[0]}"),
        ("{name!r} {name:>10}", "{name!r} {name:>10}"),
        ("}{ unbalanced { }", "}{ unbalanced { }"),
        ("set {name} in {d}", "set France in {'a': 1}"),
        ("", ""),
    ],
)
def test_cases(text: str, expected: str) -> None:
    assert interpolate(text, NS) == expected


def test_nothing_is_evaluated() -> None:
    calls = []

    class Spy(dict):
        def __getitem__(self, key):  # pragma: no cover - must not be called for expressions
            calls.append(key)
            return super().__getitem__(key)

    assert interpolate("{__import__('os').system('echo hi')}", Spy(NS)) == "{__import__('os').system('echo hi')}"
    assert calls == []


def test_value_is_str_of_object() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing with {braces}"

    # the substituted text is not interpolated again
    assert interpolate("{t}", {"t": Thing(), "braces": "NO"}) == "a thing with {braces}"


_plain = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20)


@given(st.text(max_size=200).filter(lambda s: "{{" not in s))
def test_identity_without_escapes_or_names(text: str) -> None:
    assert interpolate(text, {}) == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="abc xyz", max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet="abc", max_size=3), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200)
@given(json_values)
def test_json_stays_as_written(value: object) -> None:
    text = json.dumps(value)
    assert interpolate(text, {"a": "X", "abc": "Y", "b": 1}) == text


@settings(max_examples=200)
@given(st.lists(st.one_of(_plain, st.just("{{"), st.just("}}"), st.sampled_from(["{name}", "{n}"])), max_size=12))
def test_matches_str_format_on_format_syntax(parts: list[str]) -> None:
    """On text that is valid str.format syntax, the rules agree with Python's."""
    text = "".join(parts)
    try:
        expected = text.format(**NS)
    except (ValueError, IndexError, KeyError):
        return  # not valid format syntax (e.g. a lone "}}" pairing differently)
    depth = 0
    for part in parts:
        depth += {"{{": 1, "}}": -1}.get(part, 0)
        if depth < 0:
            return  # a "}}" closing no "{{" is left as written by design (it closes code braces)
    if depth:
        return
    assert interpolate(text, NS) == expected
