"""gridllm-nb against a fake grid served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridllm_nb.cli import main

from ..fakes import FakeJobsAPI, ServedFake, words_script


@pytest.fixture
def grid():
    fake = FakeJobsAPI(
        scripts={"good": words_script("a fine answer"), "flaky": words_script("half of it", final="error")},
        models=["good", "flaky"],
        cancel_supported=True,
    )
    with ServedFake(fake) as served:
        yield served


def test_run_json_reports_every_model(grid, capsys) -> None:
    code = main(["run", "hello", "-m", "good", "-m", "flaky", "--url", grid.url, "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1  # one model failed
    by_tag = {r["tag"]: r for r in rows}
    assert by_tag["good"]["state"] == "completed" and by_tag["good"]["text"] == "a fine answer"
    assert by_tag["flaky"]["state"] == "failed" and by_tag["flaky"]["text"] == "half of it"
    assert by_tag["flaky"]["error"] and isinstance(by_tag["good"]["elapsed_s"], float)
    assert len(by_tag["good"]["id"]) == 32
    stats = {"queued_s", "ttft_s", "gen_s", "tokens", "tokens_per_s", "finish"}
    assert stats <= set(by_tag["good"]) and stats <= set(by_tag["flaky"])
    assert (by_tag["good"]["finish"], by_tag["flaky"]["finish"]) == ("completed", "failed")
    assert by_tag["good"]["tokens"] > 0 and by_tag["good"]["ttft_s"] >= 0


def test_run_plain_prints_each_final_text_and_exits_0(grid, capsys) -> None:
    assert main(["run", "hello", "-m", "good", "--url", grid.url, "--option", "max_tokens=8"]) == 0
    out = capsys.readouterr().out
    assert "== good (completed" in out and "a fine answer" in out
    body = json.loads(grid.fake.posts()[-1].content)
    assert json.loads(body["commandLine"])["options"] == {"max_tokens": 8}


def test_usage_and_config_errors_exit_2_with_one_line(grid, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "hello"])
    assert info.value.code == 2
    assert main(["run", "hello", "-m", "gooood", "--url", grid.url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gridllm-nb: unknown model 'gooood' (did you mean good?)")
    assert main(["run", "hi", "-m", "good", "--url", "ftp://nowhere"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_unreachable_service_is_one_line_naming_the_url(capsys) -> None:
    code = main(["run", "hi", "-m", "good", "--url", "http://127.0.0.1:9/remotejobs/v2", "--timeout", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "cannot reach http://127.0.0.1:9" in err and "check the URL, the token and the network" in err


def test_submit_status_watch_cancel_models(grid, capsys) -> None:
    assert main(["submit", "hello", "-m", "good", "--url", grid.url]) == 0
    job_id = capsys.readouterr().out.strip()
    assert len(job_id) == 32
    assert main(["status", job_id, "--url", grid.url, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == job_id and row["tag"] == "good"
    assert main(["watch", job_id, "--url", grid.url]) == 0
    assert "a fine answer" in capsys.readouterr().out
    assert main(["cancel", job_id, "--url", grid.url]) == 0
    assert job_id in capsys.readouterr().out
    assert main(["models", "--url", grid.url]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("good")
    assert main(["status", "f" * 32, "--url", grid.url]) == 1


def test_the_installed_console_script_runs(grid) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "gridllm-nb")
    done = subprocess.run([exe, "run", "hi", "-m", "good", "--url", grid.url, "--json"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["text"] == "a fine answer"


def test_leaderboard_prints_the_ranking(tmp_path, monkeypatch, capsys) -> None:
    from gridllm_nb.core.arena import TIE, Vote, record_vote

    monkeypatch.setenv("GRIDLLM_HISTORY", str(tmp_path / "h.sqlite3"))
    assert main(["leaderboard"]) == 0 and "no votes yet" in capsys.readouterr().out
    record_vote(Vote(("m:1", "n:1"), "n:1"))
    record_vote(Vote(("m:1", "n:1"), TIE))
    assert main(["leaderboard"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "n:1" and lines[2].split()[0] == "m:1"
    assert lines[1].split()[-3:] == ["1", "0", "1"]  # wins, losses, ties


def test_history_retry_and_attach_from_the_command_line(grid, capsys, tmp_path, monkeypatch) -> None:
    from gridllm_nb.core import history

    monkeypatch.setenv(history.HISTORY_ENV, str(tmp_path / "history.sqlite3"))
    assert main(["run", "hello", "-m", "good", "-m", "flaky", "--url", grid.url, "--option", "max_tokens=8"]) == 1
    capsys.readouterr()
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    short = history.short_id(history.recent(1)[0]["run_id"])
    assert out.startswith(f"{short}  ") and "    flaky  failed" in out

    grid.fake.scripts["flaky"] = words_script("fixed this time")
    posts = len(grid.fake.posts())
    assert main(["retry", short, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["tag"]: (r["state"], r["text"]) for r in rows} == {
        "good": ("completed", "a fine answer"), "flaky": ("completed", "fixed this time")}
    sent = [json.loads(r.content) for r in grid.fake.posts()[posts:]]
    assert [s["tag"] for s in sent] == ["flaky"]
    assert json.loads(sent[0]["commandLine"]) == {"inputs": ["hello"], "options": {"max_tokens": 8}}

    assert main(["retry", short]) == 0 and "nothing to retry in run" in capsys.readouterr().err
    assert main(["attach", "--json"]) == 0  # the newest run, every model ended: shown as stored
    assert [r["text"] for r in json.loads(capsys.readouterr().out)] == ["a fine answer", "fixed this time"]
    assert main(["retry", "beef"]) == 2
    assert capsys.readouterr().err.strip().startswith("gridllm-nb: no run beef in the history")


def test_a_grid_is_one_history_run_listed_in_one_line_retried_and_attached(grid, capsys, tmp_path,
                                                                            history_file) -> None:
    # issue 22, case 10: grids were not written to the history at all
    from gridllm_nb.core import history

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(3)))
    assert main(["grid", str(prompts), "-m", "good", "-m", "flaky", "--url", grid.url]) == 1
    capsys.readouterr()
    assert main(["history"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    [run] = history.recent(5)
    short = history.short_id(run["run_id"])
    assert line.startswith(f"{short}  ") and line.endswith("  grid: 3 prompts × 2 models  3 completed, 3 failed")

    grid.fake.scripts["flaky"] = words_script("fixed this time")
    before = len(grid.fake.jobs)
    assert main(["retry", short, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["prompt"], r["tag"], r["state"]) for r in rows) == sorted(
        (f"q{i}", tag, "completed") for i in range(3) for tag in ("good", "flaky"))
    assert sorted(json.loads(j.command_line)["inputs"][0] + " " + j.tag
                  for j in list(grid.fake.jobs.values())[before:]) == ["q0 flaky", "q1 flaky", "q2 flaky"]
    assert main(["retry", short]) == 0 and "nothing to retry in grid" in capsys.readouterr().err
    assert main(["attach"]) == 0  # every job ended: the grid as stored, no job sent
    assert "3 prompts × 2 models: 6 completed, 0 failed" in capsys.readouterr().out
    assert len(grid.fake.jobs) == before + 3
    assert main(["history"]) == 0 and capsys.readouterr().out.endswith("6 completed, 0 failed\n")
    report = tmp_path / "report.html"
    assert main(["report", short, "-o", str(report)]) == 0 and "q2" in report.read_text()


def _one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize("garbage", ["bytes", "folder", "foreign"])
def test_the_history_commands_on_a_broken_history_file_say_so_in_one_line(garbage, tmp_path, monkeypatch,
                                                                          capsys) -> None:
    # issue 22, case 1: a raw sqlite3.DatabaseError traceback from history, leaderboard and attach
    import sqlite3

    path = tmp_path / "history.sqlite3"
    if garbage == "bytes":
        path.write_bytes(b"this is not a database\x00" * 100)
    elif garbage == "folder":
        path.mkdir()
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE responses (x TEXT)")
            conn.execute("CREATE TABLE votes (y TEXT)")
    monkeypatch.setenv("GRIDLLM_HISTORY", str(path))
    for argv in (["history"], ["leaderboard"], ["attach"], ["retry", "abc"]):
        assert main(argv) == 2, argv
        assert _one_line(capsys).startswith(f"gridllm-nb: cannot read the history {path}"), argv


def test_a_prompt_that_is_not_valid_unicode_is_refused_before_anything_is_sent(grid, capsys, monkeypatch) -> None:
    # issue 22, case 2: a lone surrogate (argv is decoded with surrogateescape) ended in httpx's UnicodeEncodeError
    import io

    posts = len(grid.fake.posts())
    for argv in (["run", "caf\udce9", "-m", "good"], ["submit", "caf\udce9", "-m", "good"],
                 ["run", "hi", "-m", "good", "--system", "\ud800"], ["run", "hi", "-m", "go\udcffod"]):
        assert main([*argv, "--url", grid.url]) == 2
        assert "is not valid Unicode text: a lone surrogate" in _one_line(capsys)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9 au lait"), encoding="utf-8"))
    assert main(["run", "-", "-m", "good", "--url", grid.url]) == 2
    assert _one_line(capsys) == "gridllm-nb: the prompt on stdin is not UTF-8 text (byte 3)"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9"), encoding="utf-8",
                                                       errors="surrogateescape"))
    assert main(["run", "-", "-m", "good", "--url", grid.url]) == 2
    assert _one_line(capsys).endswith("prompt is not valid Unicode text: a lone surrogate ('\\udce9') at character 3")
    assert len(grid.fake.posts()) == posts


@pytest.mark.parametrize("argv", [["--hours", "nan"], ["--hours", "inf"], ["--timeout", "nan"],
                                  ["--option", "temperature=NaN"], ["--option", "t=Infinity"],
                                  ["--option", "t=1e400"], ["--hours", "-1"]])
def test_a_number_that_is_not_finite_is_one_line(grid, capsys, argv) -> None:
    # issue 22, case 3: --hours nan was a ValueError traceback; Infinity went out as non-standard JSON
    posts = len(grid.fake.posts())
    assert main(["run", "hi", "-m", "good", "--url", grid.url, *argv]) == 2
    line = _one_line(capsys)
    assert "finite number" in line or "hours must be more than 0" in line
    assert main(["submit", "hi", "-m", "good", "--url", grid.url, "--hours", "nan"]) == 2
    assert "hours must be a finite number" in _one_line(capsys)
    assert len(grid.fake.posts()) == posts


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/x", "http://127.0.0.1:ab/x", "http://[::1/x",
                                 "ftp://user:secret@host/x", "http://user:secret@127.0.0.1:70000/x"])
def test_a_url_that_cannot_be_parsed_is_one_line_without_the_password(capsys, url, history_file) -> None:
    # issue 22, case 4
    for argv in (["run", "hi", "-m", "good"], ["models"], ["status", "f" * 32], ["attach"]):
        assert main([*argv, "--url", url]) == 2, argv
        line = _one_line(capsys)
        assert "secret" not in line and ("URL" in line or "history" in line)


def test_watch_refuses_a_malformed_job_id_at_once(grid, capsys) -> None:
    # issue 22, case 9: `watch nonexistent` retried for 122 s before saying "malformed job id"
    requests = len(grid.fake.requests)
    for command in ("watch", "status", "cancel"):
        assert main([command, "nonexistent", "--url", grid.url]) == 2
        assert _one_line(capsys) == "gridllm-nb: malformed job id 'nonexistent': expected 32 hex digits"
    assert len(grid.fake.requests) == requests  # refused before anything was asked


def test_a_port_out_of_range_is_a_usage_error(capsys) -> None:
    for argv in (["local", "status", "--port", "99999"], ["webui", "--port", "0"], ["local", "stop", "--port", "x"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_report_writes_a_history_run_as_one_html_file(tmp_path, monkeypatch, capsys) -> None:
    from gridllm_nb.api.jobs import JobState
    from gridllm_nb.core import history, recorder
    from gridllm_nb.core.results import Result, Results

    monkeypatch.setenv(history.HISTORY_ENV, str(tmp_path / "h.sqlite3"))
    results = Results("Capital of France?", {"a:1": Result(tag="a:1", text="**Paris**", state=JobState.COMPLETED),
                                             "b:1": Result(tag="b:1", text="<img src=x onerror=alert(1)>",
                                                           state=JobState.FAILED, error="boom")})
    run_id = recorder.record(results, "http://127.0.0.1:9/remotejobs/v2", options={"max_tokens": 8})
    out = tmp_path / "report.html"
    assert main(["report", run_id[:8], "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert "<strong>Paris</strong>" in page and "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page
    assert "Capital of France?" in page and "max_tokens" in page and "127.0.0.1:9/remotejobs/v2" in page
    with pytest.raises(SystemExit) as info:
        main(["report", run_id])  # -o is required: a report never lands anywhere unasked
    assert info.value.code == 2
    assert main(["report", "beef", "-o", str(out)]) == 2 and "no run beef" in capsys.readouterr().err
    assert main(["report", "-o", str(tmp_path / "nowhere" / "r.html")]) == 2
    assert "cannot write the report" in capsys.readouterr().err


def test_votes_export_and_the_leaderboards_options(tmp_path, monkeypatch, capsys) -> None:
    from gridllm_nb.core.arena import TIE, Vote, record_vote

    monkeypatch.setenv("GRIDLLM_HISTORY", str(tmp_path / "h.sqlite3"))
    monkeypatch.setenv("USER", "ada")
    monkeypatch.setenv("LOGNAME", "ada")
    record_vote(Vote(("m:1", "n:1"), "n:1", prompt="why?"))
    record_vote(Vote(("m:1", "n:1"), TIE, owner="grace"))
    assert main(["votes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "created,model_a,model_b,winner,prompt,run_id,owner" and len(lines) == 3
    assert lines[1].endswith(",m:1,n:1,n:1,why?,,ada")
    out = tmp_path / "votes.json"
    assert main(["votes", "--mine", "--export", str(out)]) == 0 and "1 vote written" in capsys.readouterr().out
    assert [v["owner"] for v in json.loads(out.read_text())] == ["ada"]
    assert main(["votes", "--export", str(tmp_path / "votes.txt")]) == 2
    assert ".csv or .json" in capsys.readouterr().err
    assert main(["leaderboard", "--mine"]) == 0
    mine = capsys.readouterr().out
    assert "your votes only" in mine and "Bradley–Terry" in mine
    assert main(["leaderboard", "--method", "elo"]) == 0 and "Elo ratings" in capsys.readouterr().out


def test_a_usage_error_never_echoes_a_password(capsys) -> None:
    # found by the fuzz: argparse echoed a stray URL argument whole
    with pytest.raises(SystemExit):
        main(["models", "--url", "http://127.0.0.1:1/x", "http://user:secret@127.0.0.1:1/x"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: http://user:***@127.0.0.1:1/x" in err and "secret" not in err


def test_a_reader_that_stops_reading_gets_no_traceback(tmp_path) -> None:
    """``gridllm-nb history | head -1``: the pipe closes under the command; it stops quietly, exit 0."""
    import subprocess

    from gridllm_nb.core import recorder
    from gridllm_nb.core.results import Result, Results

    env = {**os.environ, "GRIDLLM_HISTORY": str(tmp_path / "h.sqlite3")}
    os.environ["GRIDLLM_HISTORY"] = env["GRIDLLM_HISTORY"]
    try:
        for i in range(300):  # more than a pipe's buffer of history lines
            recorder.record(Results(f"prompt {i} " + "words " * 20, {"m:1": Result(tag="m:1", text="answer " * 30)}),
                            "http://127.0.0.1:9/remotejobs/v2")
    finally:
        del os.environ["GRIDLLM_HISTORY"]
    command = Path(sys.executable).parent / "gridllm-nb"
    done = subprocess.run(["bash", "-c", f"{command} history 300 | head -1"],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
