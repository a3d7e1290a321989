"""``config``: the one reader of KEY=VALUE settings."""

from __future__ import annotations

import re

import pytest

from gridllm_nb.config import mask_credentials, parse_assignments, resolve_endpoint
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


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_an_option_that_is_not_a_finite_number_is_refused(value: str) -> None:
    # issue 22, case 3: these were sent as non-standard JSON (or failed deep in the encoder)
    with pytest.raises(ConfigError, match=f"--option t: '{value}' is not a finite number"):
        parse_assignments([f"t={value}"], what="--option", json_values=True)


@pytest.mark.parametrize(("url", "why"), [
    ("http://h:99999/remotejobs/v2", "its port is not in 1-65535"),
    ("http://h:ab/remotejobs/v2", "its port is not a number"),
    ("http://[::1/remotejobs/v2", "an IPv6 host needs both of its brackets"),
    ("http://h:0/x", "port 0"),
    ("http://h x/y", "a space or a control character"),
    ("http://h/\x00", "a space or a control character"),
    ("http://\udcff/", "not valid Unicode text"),
    ("ftp://user:secret@host/x", "not an http(s) URL"),
    ("http://user:secret@h:99999/", "its port is not in 1-65535"),
    ("http://user:se@cret@[::1/", "IPv6"),
])
def test_a_url_that_cannot_be_used_is_one_line_with_the_password_masked(url: str, why: str) -> None:
    # issue 22, case 4: these raised ValueError / httpx.InvalidURL, and ftp:// echoed the password
    with pytest.raises(ConfigError, match=re.escape(why)) as info:
        resolve_endpoint(url)
    message = str(info.value)
    assert "secret" not in message and "cret" not in message and "\n" not in message


def test_a_bracketed_ipv6_url_with_a_port_is_fine() -> None:
    assert resolve_endpoint("http://[::1]:8765/remotejobs/v2/").url == "http://[::1]:8765/remotejobs/v2"


def test_a_password_with_an_at_sign_is_masked_whole() -> None:
    assert mask_credentials("see http://u:p@ss@host/x") == "see http://u:***@host/x"


@pytest.mark.parametrize("token", ["tök", "two words", "line\nbreak", "\udcff"])
def test_a_token_no_http_header_can_carry_is_refused_without_showing_it(token: str) -> None:
    with pytest.raises(ConfigError, match="the API token holds characters") as info:
        resolve_endpoint("http://127.0.0.1:1/x", token)
    assert token not in str(info.value)
