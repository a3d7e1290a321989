"""The job store: rows on status changes, a journal of log deltas in between."""

from __future__ import annotations

import time
from pathlib import Path

from gridllm_nb.service.store import RESTART_REASON, JobRecord, JobStore


def job(status: str = "running", log: str = "") -> JobRecord:
    return JobRecord(id="b" * 32, tag="t", app="gridrepublic:text-inference", command_line='{"inputs":["x"]}',
                     prompt="x", system=None, options={}, hours=1, created="2026-01-01T00:00:00+00:00",
                     status=status, log=log, started=time.time())


def test_a_growing_log_is_journaled_as_deltas_not_rewritten(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    record = job(log="Once")
    store.save([record])
    row_bytes = (tmp_path / "jobs.sqlite3-wal").stat().st_size
    for piece in [" upon", " a", " time"] * 50:
        record.log += piece
        store.append_logs([record])
    journal = store.journal_path.read_text(encoding="utf-8")
    assert journal.count("\n") == 150
    assert len(journal) < 50 * 150, "each line holds one delta (~40 bytes of framing), not the whole log"
    assert (tmp_path / "jobs.sqlite3-wal").stat().st_size == row_bytes, "no row rewritten while the log grows"
    assert store.get([record.id])[record.id].log == record.log, "a reader sees row + journal"
    store.close()


def test_restart_replays_the_journal_then_empties_it(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    store = JobStore(db)
    record = job(log="The sky")
    store.save([record])
    record.log += " is blue"
    store.append_logs([record])
    record.log += " because"
    store.append_logs([record])
    with open(store.journal_path, "a", encoding="utf-8") as journal:
        journal.write('["' + "b" * 32 + '",22,"te')  # a write cut short by a crash
    store.close()  # no checkpoint: as if the process had been killed

    again = JobStore(db)
    assert again.recover(time.time()) == 1
    recovered = again.get([record.id])[record.id]
    assert (recovered.status, recovered.log, recovered.reason) == ("error", "The sky is blue because", RESTART_REASON)
    assert again.journal_size() == 0
    again.close()


def test_journal_lines_that_do_not_continue_the_row_are_ignored(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    record = job(log="abc")
    store.save([record])
    record.saved_len = 1
    store.append_logs([record])  # [id, 1, "bc"]: already in the row
    assert store.get([record.id])[record.id].log == "abc"
    store.close()


def test_database_files_and_folder_are_private(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "jobs.sqlite3"
    store = JobStore(db)
    record = job(log="secret prompt")
    store.save([record])
    record.log += " and answer"
    store.append_logs([record])
    assert (db.parent.stat().st_mode & 0o777) == 0o700
    files = [p for p in db.parent.iterdir()]
    assert {p.name for p in files} >= {"jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm", "jobs.sqlite3.logs"}
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in files), {p.name: oct(p.stat().st_mode) for p in files}
    store.close()


def test_journal_lines_of_the_wrong_shape_are_skipped_like_cut_ones(tmp_path: Path) -> None:
    # issue 22, case 6: [id, offset, 12345] made every restart crash with a TypeError
    db = tmp_path / "jobs.sqlite3"
    store = JobStore(db)
    record = job(log="The sky")
    store.save([record])
    jid = record.id
    with open(store.journal_path, "a", encoding="utf-8") as journal:
        journal.writelines(line + "\n" for line in (f'["{jid}",7,12345]', f'["{jid}","7"," x"]', f'["{jid}",true," y"]', '[["a"],7," z"]',
                     '{"a":1,"b":2,"c":3}', f'["{jid}",7.0," w"]', "[1,2]", "null", f'["{jid}",7," is blue"]'))
    store.close()

    again = JobStore(db)
    assert again.recover(time.time()) == 1
    assert again.get([jid])[jid].log == "The sky is blue"
    again.close()


def test_a_second_store_on_the_same_file_through_a_symlink_is_refused(tmp_path: Path) -> None:
    # issue 22, case 7: the lock beside the symlink was another lock, so both services wrote one database
    import pytest

    from gridllm_nb.errors import ConfigError

    db = tmp_path / "real" / "jobs.sqlite3"
    db.parent.mkdir()
    first = JobStore(db)
    (tmp_path / "link.sqlite3").symlink_to(db)
    (tmp_path / "dir-link").symlink_to(db.parent)
    for other in (tmp_path / "link.sqlite3", tmp_path / "dir-link" / "jobs.sqlite3"):
        with pytest.raises(ConfigError, match="is in use by another gridllm_nb service"):
            JobStore(other)
    first.close()
