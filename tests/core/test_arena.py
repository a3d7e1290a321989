"""The blind arena's core: the deal, the votes table, the Elo leaderboard."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from gridllm_nb.core.arena import BAD, TIE, Vote, deal, leaderboard, record_vote, votes


def test_the_deal_is_a_shuffle_repeatable_with_a_seeded_random() -> None:
    tags = ["m:1", "n:1", "o:1"]
    first = deal(tags, random.Random(7))
    assert deal(tags, random.Random(7)) == first
    assert list(first) == ["A", "B", "C"] and sorted(first.values()) == tags
    assert {tuple(deal(tags, random.Random(s)).values()) for s in range(20)} != {tuple(tags)}


def test_votes_are_stored_next_to_responses_and_read_back(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    record_vote(Vote(("m:1", "n:1"), "n:1", prompt="hi", run_id="r1"), path=db)
    record_vote(Vote(("n:1", "m:1"), TIE, prompt="ho"), path=db)
    got = votes(db)
    assert [(v.models, v.winner, v.prompt, v.run_id) for v in got] == [
        (("m:1", "n:1"), "n:1", "hi", "r1"), (("n:1", "m:1"), TIE, "ho", None)]
    assert (db.stat().st_mode & 0o777) == 0o600


def test_a_winner_must_be_shown_or_tie_or_bad(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        record_vote(Vote(("m:1", "n:1"), "x:1"), path=tmp_path / "h.sqlite3")


def test_an_old_history_without_a_votes_table_has_no_votes(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE responses (id INTEGER PRIMARY KEY)")
    assert votes(db) == [] and leaderboard(db).rows == []
    assert "No arena votes" in leaderboard(db)._repr_html_()


def test_leaderboard_on_a_known_vote_set(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    for _ in range(6):
        record_vote(Vote(("good", "bad:<b>"), "good"), path=db)
    record_vote(Vote(("good", "bad:<b>", "mid"), "mid"), path=db)   # 3-way: two wins for mid
    record_vote(Vote(("good", "mid"), TIE), path=db)
    record_vote(Vote(("good", "mid"), BAD), path=db)                  # counted, moves nothing
    board = leaderboard(db)
    df = board.to_pandas()
    rows = {r["model"]: r for r in df.to_dict("records")}
    assert df["model"].iloc[0] == "good" and df["model"].iloc[-1] == "bad:<b>"
    assert (rows["good"]["wins"], rows["good"]["losses"], rows["good"]["ties"], rows["good"]["votes"]) == (6, 1, 1, 9)
    assert (rows["mid"]["wins"], rows["mid"]["ties"], rows["mid"]["votes"]) == (2, 1, 3)
    assert rows["bad:<b>"]["losses"] == 7
    for r in rows.values():
        assert r["ci_low"] <= r["rating"] <= r["ci_high"]
    assert rows["good"]["ci_low"] > rows["bad:<b>"]["ci_high"]   # clear winner: CIs apart
    assert leaderboard(db).rows == board.rows                          # seeded bootstrap
    page = board._repr_html_()
    assert "<svg" in page and "bad:&lt;b&gt;" in page and "<b>" not in page
