"""One benchmark script, run against this tree and against an earlier commit, taking turns, in one run.

A refactoring must show it costs nothing: the same script (this tree's copy
and the commit's own copy) measures both, alternately, ``--rounds`` times, so
whatever else the machine does falls on both alike. The commit is checked out
as a git worktree in a temporary folder and imported from there
(``PYTHONPATH``, which the editable install of this tree does not override).
Each run's output is printed whole, labelled; the tables are the scripts' own.

    python benchmarks/versus.py d7b4192 poller.py --sizes '' --compare 10,100,1000 --repeats 1
    python benchmarks/versus.py d7b4192 grid.py --offers bulk,watch --no-before
    python benchmarks/versus.py d7b4192 magic.py --grid-only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_in(tree: Path, script: str, args: list[str]) -> str:
    """``script`` (the tree's own copy) with ``args``, importing that tree's gridllm_nb; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(tree / "benchmarks" / script), *args], cwd=tree, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{script} failed in {tree} (exit {done.returncode})")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the earlier commit, e.g. d7b4192")
    parser.add_argument("script", help="a script of benchmarks/, e.g. poller.py")
    parser.add_argument("--rounds", type=int, default=1, help="turns each (default 1)")
    args, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="gridllm-versus-") as tmp:
        old = Path(tmp) / args.commit
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.commit], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for turn in range(args.rounds):
                for label, tree in ((args.commit, old), ("this tree", ROOT)):
                    print(f"\n## {args.script} {' '.join(rest)}: {label} (round {turn + 1})\n", flush=True)
                    print(run_in(tree, args.script, rest), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False,
                           capture_output=True)


if __name__ == "__main__":
    main()
