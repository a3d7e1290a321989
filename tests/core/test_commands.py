"""One set of commands behind ``gridllm-nb models|status|cancel`` and ``%gridllm models|status|cancel``."""

from __future__ import annotations

import io

import pytest

from gridllm_nb.cli import main
from gridllm_nb.core import commands

from ..fakes import FakeJobsAPI, ServedFake, client_for, words_script

pytestmark = pytest.mark.anyio


async def test_models_status_cancel_reports() -> None:
    fake = FakeJobsAPI(models=["a:1"], cancel_supported=True, default_script=words_script("one two"))
    client = client_for(fake)
    out = io.StringIO()
    assert await commands.models(client, out) == 0
    job_id = await client.submit("p", "a:1")
    assert await commands.status(client, [job_id, "f" * 32], out) == 1  # one id unknown
    assert await commands.cancel(client, [job_id], out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "a:1  (local)"
    assert lines[1].startswith(f"{job_id}  a:1  queued") and lines[2] == f"{'f' * 32}  unknown to the service"
    assert lines[3] == f"cancelled: {job_id}"
    await client.aclose()


async def test_a_grid_without_models_or_cancel_says_so() -> None:
    client = client_for(FakeJobsAPI(models=None, cancel_supported=False))
    out = io.StringIO()
    assert await commands.models(client, out) == 0
    assert await commands.cancel(client, ["a" * 32], out) == 1
    assert "does not list its models" in out.getvalue() and "offers no cancel" in out.getvalue()
    await client.aclose()


def test_the_cli_and_the_magic_print_the_same_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.testing.globalipapp import get_ipython

    with ServedFake(FakeJobsAPI(models=["a:1", "b:2"])) as served:
        assert main(["models", "--url", served.url]) == 0
        from_cli = capsys.readouterr().out
        shell = get_ipython()
        shell.run_line_magic("load_ext", "gridllm_nb")
        try:
            shell.run_line_magic("gridllm", f"models --url {served.url}")
        finally:
            shell.run_line_magic("unload_ext", "gridllm_nb")
        assert capsys.readouterr().out == from_cli == "a:1  (local)\nb:2  (local)\n"
