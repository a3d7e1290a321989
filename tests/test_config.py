"""``config``: the one reader of KEY=VALUE settings."""

from __future__ import annotations

import pytest

from gridllm_nb.config import parse_assignments
from gridllm_nb.errors import ConfigError


def test_option_values_are_json_when_they_read_as_json() -> None:
    pairs = ["max_tokens=8", "temperature=0.5", 'stop=["\\n"]', "name=plain text"]
    assert parse_assignments(pairs, what="--option", json_values=True) == {
        "max_tokens": 8, "temperature": 0.5, "stop": ["\n"], "name": "plain text"}


def test_settings_stay_text_for_the_traits_to_convert() -> None:
    assert parse_assignments([" hours = 2 ", "url=http://x/y?a=b"], what="%gridllm config") == {
        "hours": "2", "url": "http://x/y?a=b"}


@pytest.mark.parametrize("pair", ["nokey", "=value"])
def test_a_pair_without_key_or_equals_names_what_wanted_it(pair: str) -> None:
    with pytest.raises(ConfigError, match="--option wants KEY=VALUE"):
        parse_assignments([pair], what="--option")
