"""The wire format: commandLine round trips, id chunks, JSON decoding with and without orjson."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridllm_nb.api.wire import chunk_ids, encode_command_line

BASE = "https://grid.invalid/remotejobs/v2"

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)



@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_prompt_round_trips_through_command_line(prompt: str) -> None:
    outer = json.dumps({"commandLine": encode_command_line(prompt)})
    assert json.loads(json.loads(outer)["commandLine"])["inputs"] == [prompt]


def test_ids_are_chunked_by_count_and_url_length() -> None:
    ids = [f"{i:032x}" for i in range(250)]
    assert [len(c) for c in chunk_ids(ids)] == [100, 100, 50]
    long_ids = ["x" * 200 for _ in range(50)]
    for chunk in chunk_ids(long_ids, base_len=len(BASE)):
        assert len(BASE) + len("/jobs/") + len(",".join(chunk)) < 4096
    assert sum(len(c) for c in chunk_ids(long_ids)) == 50


@given(_JSON, st.booleans())
@settings(max_examples=150, deadline=None)
def test_orjson_and_the_stdlib_decode_every_answer_alike(value: object, ascii_only: bool) -> None:
    pytest.importorskip("orjson")
    from gridllm_nb.api import wire as client_module

    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert client_module._orjson is not None
    assert repr(client_module.loads_json(body)) == repr(json.loads(body))  # repr: 2**64 and 2.0**64 differ


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 123456789012345678901234567890}',  # past 64 bits: orjson would make a float
        b'[18446744073709551616, -9223372036854775809]',
        b'{"id": "x12345678901234567890123", "n":\n -99999999999999999999}',
        b'{"x": NaN, "y": Infinity}',
        b'{"s": "\\ud800 lone surrogate"}',
        '\ufeff{"bom": 1}'.encode(),
        '{"utf16": "é"}'.encode("utf-16"),
        b'{"dup": 1, "dup": 2}',
        b'{"f": 0.1, "e": 1e400}',
    ],
)
def test_answers_orjson_refuses_decode_as_the_stdlib_decodes_them(body: bytes) -> None:
    from gridllm_nb.api.wire import loads_json

    assert repr(loads_json(body)) == repr(json.loads(body))


@pytest.mark.parametrize("body", [b"", b"not json", b'{"a": ', b"\xff\xfe\x00"])
def test_bodies_neither_decoder_takes_raise_value_error(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb.api import wire as client_module

    with pytest.raises(ValueError):
        client_module.loads_json(body)
    monkeypatch.setattr(client_module, "_orjson", None)
    with pytest.raises(ValueError):
        client_module.loads_json(body)
