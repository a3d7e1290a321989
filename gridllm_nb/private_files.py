"""Files only their owner can read: prompts and answers are private.

On a shared machine another user must not read the jobs database, the
history or the service's state. Folders this package creates are 0700 and
files 0600, made so from the start (never created open and tightened later).
SQLite creates its ``-wal`` and ``-shm`` files with the database file's mode,
so creating the database file first is enough for those.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["private_dir", "private_file"]


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing folder is left as it is."""
    folder = Path(path).expanduser()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty as 0600 unless it exists; its folder as ``private_dir``."""
    file = Path(path).expanduser()
    private_dir(file.parent)
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    return file
