"""The votes table: who cast each vote, an old file gaining the column, the export as CSV and JSON."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from gridllm_nb.core.votes import (
    BAD,
    TIE,
    Vote,
    current_owner,
    export,
    games,
    record_vote,
    votes,
)
from gridllm_nb.errors import ConfigError

OLD_TABLE = """CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, run_id TEXT,
prompt TEXT NOT NULL, models TEXT NOT NULL, winner TEXT NOT NULL)"""


def test_a_vote_is_owned_by_the_user_who_cast_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ada")
    monkeypatch.setenv("USER", "ada")
    db = tmp_path / "h.sqlite3"
    record_vote(Vote(("m:1", "n:1"), "n:1"), path=db)
    record_vote(Vote(("m:1", "n:1"), TIE, owner="grace"), path=db)
    assert current_owner() == "ada" and [v.owner for v in votes(db)] == ["ada", "grace"]
    assert [v.winner for v in votes(db, mine=True)] == ["n:1"]


def test_an_old_votes_table_gains_the_owner_column_and_its_votes_are_nobodys(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(OLD_TABLE)
        conn.execute("INSERT INTO votes (created, prompt, models, winner) VALUES ('2025-01-01T00:00:00+00:00', "
                     "'p', 'm:1\nn:1', 'm:1')")
    before = db.read_bytes()
    [old] = votes(db)
    assert (old.owner, old.winner, old.models) == (None, "m:1", ("m:1", "n:1"))
    assert db.read_bytes() == before  # reading never changes the file
    assert votes(db, mine=True) == []
    record_vote(Vote(("m:1", "n:1"), "n:1"), path=db)
    with sqlite3.connect(db) as conn:
        assert "owner" in {row[1] for row in conn.execute("PRAGMA table_info(votes)")}
    assert [v.owner for v in votes(db)] == [None, current_owner()]
    assert [v.winner for v in votes(db, mine=True)] == ["n:1"]


def test_games_of_a_vote() -> None:
    assert games(Vote(("a", "b", "c"), "c")) == [("c", "a", 1.0), ("c", "b", 1.0)]
    assert games(Vote(("a", "b", "c"), TIE)) == [("a", "b", 0.5), ("a", "c", 0.5), ("b", "c", 0.5)]
    assert games(Vote(("a", "b"), BAD)) == []


CAST = [
    Vote(("m:1", "n:1"), "n:1", prompt="Is 2+2 4?\nsay \"yes\", or no", run_id="r1", created="2026-01-02T03:04:05+00:00",
         owner="ada"),
    Vote(("m:1", "n:1", "o:1"), TIE, prompt="=HYPERLINK(\"http://x\")", created="2026-01-03T00:00:00+00:00"),
]


def test_votes_export_as_csv_with_every_field(tmp_path: Path) -> None:
    out = export(CAST, tmp_path / "votes.CSV")
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["created", "model_a", "model_b", "model_c", "winner", "prompt", "run_id", "owner"]
    assert rows[0] == {"created": "2026-01-02T03:04:05+00:00", "model_a": "m:1", "model_b": "n:1", "model_c": "",
                       "winner": "n:1", "prompt": "Is 2+2 4?\nsay \"yes\", or no", "run_id": "r1", "owner": "ada"}
    assert rows[1]["model_c"] == "o:1" and rows[1]["winner"] == TIE and rows[1]["owner"] == ""
    assert rows[1]["prompt"] == "'=HYPERLINK(\"http://x\")"  # a spreadsheet shows it, never runs it


def test_votes_export_as_json_exactly(tmp_path: Path) -> None:
    out = export(CAST, tmp_path / "votes.json")
    assert json.loads(out.read_text(encoding="utf-8")) == [v.to_dict() for v in CAST]
    assert json.loads(out.read_text(encoding="utf-8"))[1]["prompt"] == "=HYPERLINK(\"http://x\")"


def test_an_export_to_another_kind_of_file_or_nowhere_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.csv or \.json"):
        export(CAST, tmp_path / "votes.xlsx")
    with pytest.raises(ConfigError, match="cannot write"):
        export(CAST, tmp_path / "missing" / "votes.csv")
