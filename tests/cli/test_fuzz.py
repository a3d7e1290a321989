"""Random argument vectors for every ``gridllm-nb`` subcommand, against the fake grid over 127.0.0.1.

Whatever the arguments (URLs, numbers, option strings, prompts of any
Unicode including lone surrogates and control characters, ids), the user
gets no traceback, an exit code the CLI's docstring documents (0, 1, 2),
and never the password of a URL or the token in any output. stdout and
stderr are strict UTF-8, as a terminal's are: printing a lone surrogate
would fail here as it would there.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gridllm_nb.cli import main

from ..fakes import FakeJobsAPI, ServedFake, words_script

SECRET = "Zq7sekretPASSWORDx9"
TOKEN = "Tk4tokenVALUEnever8"

KNOWN = "<known job>"
_served: ServedFake | None = None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedFake]:
    """The fake grid on 127.0.0.1, the only endpoint any example can reach (``GRIDLLM_API_URL``),
    with its own history and state folder; ``serve``, ``webui`` and ``local start`` are not run."""
    global _served
    fake = FakeJobsAPI(scripts={"good": words_script("fine"), "flaky": words_script("half", final="error")},
                       models=["good", "flaky"], cancel_supported=True)
    folder = tmp_path_factory.mktemp("fuzz")
    patch = pytest.MonkeyPatch()
    with ServedFake(fake) as server:
        patch.setenv("GRIDLLM_API_URL", server.url)
        patch.setenv("GRIDLLM_API_TOKEN", TOKEN)
        patch.setenv("GRIDLLM_HISTORY", str(folder / "history.sqlite3"))
        patch.setenv("GRIDLLM_STATE_DIR", str(folder / "state"))
        patch.setattr("gridllm_nb.core.local.serve", lambda args: 0)
        patch.setattr("gridllm_nb.notebook.webui.serve_webui", lambda **kw: 0)
        patch.setattr("gridllm_nb.service.launcher.ensure_local_service", lambda *a, **kw: None)
        _served = server
        try:
            yield server
        finally:
            patch.undo()


def _url_with_secret() -> str:
    assert _served is not None
    return _served.url.replace("http://", f"http://user:{SECRET}@")


SUBCOMMANDS = ("run", "submit", "status", "watch", "cancel", "models", "serve", "local", "history", "attach", "retry",
               "leaderboard", "votes", "report", "webui", "grid")
anything = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)  # lone surrogates included
numbers = st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400", "0.5", "1", "abc", "", "1e-300"]),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr), anything)
urls = st.one_of(
    st.just("served"), st.just("secret"),
    st.sampled_from(["http://127.0.0.1:99999/x", "http://127.0.0.1:ab/x", "http://[::1/x", f"ftp://u:{SECRET}@h/x",
                     f"http://u:{SECRET}@127.0.0.1:70000/x", f"http://u:{SECRET}@[::1/x", "http://127.0.0.1:1/x",
                     "", "http://", "not a url", "http://127.0.0.1/\x00", "http://\udcff/"]),
    anything.map(lambda s: "http://127.0.0.1:" + s),
)
models = st.one_of(st.just("good"), st.just("good"), st.just("flaky"), st.sampled_from(["gooood", " ", ""]), anything)
options = st.one_of(st.sampled_from(["max_tokens=4", "t=NaN", "t=Infinity", "t=1e400", "=x", "nokey", 'stop=["\\n"]',
                                     "x={}", "x=[1,", "t=-Infinity"]), anything)
ids = st.one_of(st.sampled_from(["nonexistent", "f" * 32, "F" * 32, "g" * 32, "", " ", ",", "../x"]), anything)


def _argv(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from([*SUBCOMMANDS, "bogus"]))
    argv = [command]
    if command in ("run", "submit"):
        argv.append(draw(st.one_of(st.just("hello"), st.just("hello"), st.just("-"), anything)))
        for _ in range(draw(st.integers(0 if command == "run" else 1, 2))):
            argv += ["-m", draw(models)]
        if draw(st.booleans()):
            argv += ["--hours", draw(numbers)]
    if command == "run":
        argv += ["--timeout", draw(st.sampled_from(["5", "5", "5", "nan", "-1", "0", "inf", "x"]))]
        for _ in range(draw(st.integers(0, 2))):
            argv += ["--option", draw(options)]
        if draw(st.booleans()):
            argv += ["--system", draw(anything)]
    if command in ("status", "watch", "cancel"):
        real = st.integers(0, 99).map(lambda i: f"{KNOWN}{i}")  # a job the fake made (chosen when run)
        argv += [draw(st.one_of(real, real, ids)) for _ in range(draw(st.integers(0, 2)))]
    if command in ("attach", "retry"):
        argv += [draw(st.one_of(st.sampled_from(["", "beef", "0"]), st.just(None), st.just(None), anything))]
        argv = [a for a in argv if a is not None]
        argv += ["--timeout", draw(st.sampled_from(["5", "5", "nan", "-1", "x"]))]
    if command == "grid":
        argv += [draw(st.one_of(st.sampled_from(["missing.jsonl", "x.txt", "", "-"]), anything))]
        for _ in range(draw(st.integers(0, 2))):
            argv += ["-m", draw(models)]
        for flag, values in (("--check", anything), ("--min-pass", numbers), ("--max-live", numbers)):
            if draw(st.booleans()):
                argv += [flag, draw(values)]
    if command == "local":
        argv += [draw(st.sampled_from(["start", "stop", "status", "restart"]))]
    if command in ("local", "webui", "serve") and draw(st.booleans()):
        argv += ["--port", draw(st.one_of(st.sampled_from(["0", "99999", "-1", "8765", "x"]), anything))]
    if command == "history" and draw(st.booleans()):
        argv += [draw(st.one_of(st.sampled_from(["3", "-1", str(2**70), "x"]), anything))]
    if command in ("leaderboard", "votes") and draw(st.booleans()):
        argv.append(draw(st.sampled_from(["--mine", "--method", "--export"])))  # report: without -o, a usage error
    if command not in ("local", "history", "leaderboard", "votes", "serve") and draw(st.booleans()):
        url = draw(st.one_of(st.just("served"), st.just("secret"), urls))
        argv += ["--url", {"served": _served.url, "secret": _url_with_secret()}.get(url, url) if _served else url]
    if command in ("run", "status", "attach", "retry") and draw(st.booleans()):
        argv.append("--json")
    if draw(st.integers(0, 19)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(anything))  # a stray word anywhere
    return argv


@st.composite
def argvs(draw: st.DrawFn) -> tuple[list[str], bytes]:
    return _argv(draw), draw(st.binary(max_size=20) | st.just(b"a prompt"))


def _terminal() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(case=argvs())
def test_no_argument_vector_gets_a_traceback_a_wrong_exit_code_or_a_secret(served: ServedFake, case) -> None:
    argv, stdin = case
    known = sorted(served.fake.jobs) or ["f" * 32]
    argv = [known[int(a[len(KNOWN):]) % len(known)] if a.startswith(KNOWN) else a for a in argv]
    out, err = _terminal(), _terminal()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse: usage errors (2) and --help (0)
            code = exit_.code
    event(f"{argv[0] if argv else ''} exits {code}")
    said = out.buffer.getvalue().decode() + err.buffer.getvalue().decode()  # type: ignore[attr-defined]
    assert code in (0, 1, 2), (argv, code, said)
    assert "Traceback" not in said, (argv, said)
    assert SECRET not in said and TOKEN not in said, (argv, said)
    if code == 2:
        assert err.buffer.getvalue(), argv  # type: ignore[attr-defined]  # a usage error says why


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[str], bytes]:
    """``run`` with whatever prompt, system prompt and options, to models that answer: real runs."""
    argv = ["run", draw(anything.filter(lambda p: p != "-")), "-m", draw(st.sampled_from(["good", "flaky"])),
            "--timeout", "10"]
    for _ in range(draw(st.integers(0, 2))):
        argv += ["--option", draw(options)]
    if draw(st.booleans()):
        argv += ["--system", draw(anything)]
    if draw(st.booleans()):
        argv += ["--url", _url_with_secret()]
    if draw(st.booleans()):
        argv.append("--json")
    return argv, b""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(case=runs())
def test_a_run_of_any_text_ends_in_a_documented_exit_code_without_a_secret(served: ServedFake, case) -> None:
    test_no_argument_vector_gets_a_traceback_a_wrong_exit_code_or_a_secret.hypothesis.inner_test(served, case)


def test_the_fuzz_reaches_every_subcommand() -> None:
    """The strategy names every subcommand the parser has (a new one must join the fuzz)."""
    from gridllm_nb.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(SUBCOMMANDS)
