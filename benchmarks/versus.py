"""One benchmark script, run against this tree and against an earlier commit, taking turns, in one run.

A refactoring must show it costs nothing: the same script (this tree's copy
and the commit's own copy) measures both, alternately, ``--rounds`` times, so
whatever else the machine does falls on both alike. The commit is checked out
as a git worktree in a temporary folder and imported from there
(``PYTHONPATH``, which the editable install of this tree does not override).
Each run's output is printed whole, labelled; the tables are the scripts' own.

``--together`` runs the two copies at the same time instead, each round:
whatever else the machine does then falls on both at once, not on one
turn or the other. Only for figures in CPU time (a grid's process or kernel
CPU), never for wall time or latency, which the two would share; and only
where the two leave the machine's cores far from busy.

    python benchmarks/versus.py d7b4192 poller.py --sizes '' --compare 10,100,1000 --repeats 1
    python benchmarks/versus.py d7b4192 grid.py --offers bulk,watch --no-before --together --rounds 2
    GRIDLLM_BENCH_HISTORY=off python benchmarks/versus.py d7b4192 magic.py --grid-only --together --rounds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_in(tree: Path, script: str, args: list[str]) -> subprocess.Popen[str]:
    """``script`` (the tree's own copy) with ``args``, importing that tree's gridllm_nb."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.Popen([sys.executable, str(tree / "benchmarks" / script), *args], cwd=tree, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def output_of(run: subprocess.Popen[str], script: str, tree: Path) -> str:
    """The run's stdout, once it has ended well."""
    out, err = run.communicate()
    if run.returncode:
        sys.stderr.write(err)
        raise SystemExit(f"{script} failed in {tree} (exit {run.returncode})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the earlier commit, e.g. d7b4192")
    parser.add_argument("script", help="a script of benchmarks/, e.g. poller.py")
    parser.add_argument("--rounds", type=int, default=1, help="turns each (default 1)")
    parser.add_argument("--together", action="store_true", help="run both at once each round (CPU time only)")
    args, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="gridllm-versus-") as tmp:
        old = Path(tmp) / args.commit
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.commit], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            trees = ((args.commit, old), ("this tree", ROOT))
            for turn in range(args.rounds):
                if args.together:
                    runs = [(label, tree, start_in(tree, args.script, rest)) for label, tree in trees]
                else:
                    runs = [(label, tree, None) for label, tree in trees]
                for label, tree, run in runs:
                    output = output_of(run or start_in(tree, args.script, rest), args.script, tree)
                    at = ", at the same time" if args.together else ""
                    print(f"\n## {args.script} {' '.join(rest)}: {label} (round {turn + 1}{at})\n", flush=True)
                    print(output, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False,
                           capture_output=True)


if __name__ == "__main__":
    main()
