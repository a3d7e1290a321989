"""The commandLine field: every accepted form, every rejection, and the encoding round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridllm_nb.service.commandline import CommandLineError, parse_command_line


def test_seed_python_literal_form() -> None:
    cmd = parse_command_line("{'input': ['When does 1+1=10?'] }")
    assert cmd.inputs == ("When does 1+1=10?",)
    assert cmd.echo(cmd.inputs[0]) == '{"inputs":["When does 1+1=10?"]}'


@pytest.mark.parametrize("text", ['{"inputs": ["How can 1+1=10?"]}', '{"input": ["How can 1+1=10?"]}',
                                  '{"inputs":"How can 1+1=10?"}'])
def test_json_forms_echo_like_the_seed(text: str) -> None:
    cmd = parse_command_line(text)
    assert cmd.echo(cmd.inputs[0]) == '{"inputs":["How can 1+1=10?"]}'


def test_several_inputs_and_extensions() -> None:
    cmd = parse_command_line(json.dumps({"inputs": ["a", "b"], "system": "be brief",
                                         "options": {"num_predict": 5, "temperature": 0, "seed": 7, "stop": "\n"}}))
    assert cmd.inputs == ("a", "b")
    assert cmd.system == "be brief"
    assert cmd.options == {"max_tokens": 5, "temperature": 0.0, "seed": 7, "stop": ["\n"]}
    assert json.loads(cmd.echo("b")) == {"inputs": ["b"], "system": "be brief", "options": cmd.options}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not json at all {", "neither JSON nor a Python literal"),
        ("__import__('os').system('true')", "neither JSON"),
        ("[1, 2]", "must hold an object"),
        ('"just a string"', "must hold an object"),
        ("{}", "no 'inputs'"),
        ('{"inputs": []}', "non-empty array"),
        ('{"inputs": {"a": 1}}', "non-empty array"),
        ('{"inputs": [1]}', "input 1 is not a string"),
        ('{"inputs": ["ok", null]}', "input 2 is not a string"),
        ('{"inputs": ["  "]}', "input 1 is empty"),
        ('{"inputs": ["a"], "input": ["b"]}', "both"),
        ('{"inputs": ["a"], "system": 3}', "'system' must be a string"),
        ('{"inputs": ["a"], "options": []}', "'options' must be an object"),
        ('{"inputs": ["a"], "options": {"max_tokens": 0}}', "options.max_tokens"),
        ('{"inputs": ["a"], "options": {"max_tokens": "5"}}', "options.max_tokens"),
        ('{"inputs": ["a"], "options": {"max_tokens": true}}', "options.max_tokens"),
        ('{"inputs": ["a"], "options": {"temperature": -1}}', "options.temperature"),
        ('{"inputs": ["a"], "options": {"top_p": 2}}', "options.top_p"),
        ('{"inputs": ["a"], "options": {"seed": -5}}', "options.seed"),
        ('{"inputs": ["a"], "options": {"stop": [1]}}', "options.stop"),
        ('{"inputs": ["a"], "options": {"bogus": 1}}', "unknown option"),
        ('{"inputs": ["a"], "options": {"num_predict": 1, "max_tokens": 2}}', "not both"),
        ('{"inputs": ["\\ud800"]}', "lone surrogate"),
        ("[" * 5000 + "]" * 5000, "neither JSON"),
        ("{'input': [" + "(" * 3000 + ")" * 3000 + "]}", "neither JSON"),
    ],
)
def test_rejections_are_one_line(text: str, fragment: str) -> None:
    with pytest.raises(CommandLineError) as info:
        parse_command_line(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.status == 400


def test_input_over_limit_is_413() -> None:
    with pytest.raises(CommandLineError) as info:
        parse_command_line(json.dumps({"inputs": ["x" * (32 * 1024 + 1)]}))
    assert info.value.status == 413
    parse_command_line(json.dumps({"inputs": ["x" * (32 * 1024)]}))  # exactly the limit is fine


def test_too_many_inputs() -> None:
    with pytest.raises(CommandLineError, match="limit is 100"):
        parse_command_line(json.dumps({"inputs": ["a"] * 101}))


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).filter(str.strip)


@settings(max_examples=200, deadline=None)
@given(_text)
def test_any_prompt_survives_the_round_trip(prompt: str) -> None:
    """Quotes, backslashes, newlines, braces, non-ASCII, emoji: JSON inside JSON, unchanged."""
    body = json.dumps({"commandLine": json.dumps({"inputs": [prompt]})})
    cmd = parse_command_line(json.loads(body)["commandLine"])
    assert cmd.inputs == (prompt,)
    echoed = json.loads(json.dumps({"commandLine": cmd.echo(prompt)}))["commandLine"]
    assert json.loads(echoed) == {"inputs": [prompt]}


def test_tricky_literal_prompt() -> None:
    prompt = "He said \"hi\" \\ {braces} 'quotes'\nnew line ünïcode 🎉"
    assert parse_command_line(repr({"input": [prompt]})).inputs == (prompt,)
