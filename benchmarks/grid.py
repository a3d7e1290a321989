"""What a 1000-job grid costs the process that follows it: CPU as a share of one core.

``gridllm_nb.agrid`` runs 1000 prompts x 1 model against the loopback stream
server of benchmarks/poller.py (its own process; every job streams 24 words,
one every 0.25 s, so each lasts about 6 s): where the server has only GETs, where it
offers the local service's bulk status request, and where it also offers its watch
stream, at two ``max_live`` bounds; with all 1000
live and at 100, with one POST per job (the client before it batched the submits
of one model, ``gridllm_nb.api.submits``), side by side. The process's
CPU time over the wall time of the whole grid (submits, polls, updates,
``Results``, the progress counts) is the share of a core a kernel would
spend on it; the models themselves run elsewhere.

    python benchmarks/grid.py [--jobs 1000] [--max-live 100,1000] [--offers GETs,bulk,watch] [--no-before]

``--checks`` measures instead what checking every answer costs: the same
grid (bulk status, ``max_live`` 100) without checks and with two
(``contains:{expected}`` read from each prompt's row, and ``max-words:50``),
taking turns ``--rounds`` times; the ratio of their CPU times should stay
within 1.2.

    python benchmarks/grid.py --checks [--rounds 3]

``--history-cost`` measures what recording a grid in the history costs (on by
default since grids are written as they go, ``core.recorder``): the same grid
kept out of it and recorded, taking turns ``--rounds`` times at each
``--max-live``.

    python benchmarks/grid.py --history-cost [--max-live 100,1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from poller import Server

from gridllm_nb import agrid
from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.poller import PollSettings

BATCHED_SUBMIT = JobsClient.submit


async def one_post_per_job(self: JobsClient, prompt: str, tag: str, **kind: object) -> str:
    """The submit before batching: every job its own POST."""
    (job_id,) = await self.submit_many([prompt], tag, **kind)  # type: ignore[arg-type]
    return job_id


CHECKS = ["contains:{expected}", "max-words:50"]


async def one_grid(url: str, jobs: int, max_live: int, batched: bool, checks: bool = False,
                   history: bool = False) -> dict[str, float]:
    JobsClient.submit = BATCHED_SUBMIT if batched else one_post_per_job  # type: ignore[method-assign]
    updates = 0

    def count(_index: int, _update: object) -> None:
        nonlocal updates
        updates += 1

    cpu, wall = time.process_time(), time.perf_counter()
    prompts: list = ([{"prompt": f"prompt {i}", "expected": "word"} for i in range(jobs)] if checks
                     else [f"prompt {i}" for i in range(jobs)])
    table = await agrid(prompts, ["bench"], url=url, max_live=max_live,
                        poll=PollSettings(fast=0.3, slow=0.3), progress=None, on_update=count,
                        validate=False, announce=None, checks=CHECKS if checks else None, history=history)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    frame = table.to_pandas()
    assert len(frame) == jobs and set(frame["state"]) == {"completed"}, frame["state"].value_counts()
    assert not checks or set(frame["passed"]) <= {True, False}
    return {"wall": wall, "cpu": cpu, "updates": updates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--max-live", default="100,1000")
    parser.add_argument("--offers", default="GETs,bulk,watch", help="what the server offers, each in turn")
    parser.add_argument("--no-before", action="store_true", help="skip one POST per job (the submits before batching)")
    parser.add_argument("--checks", action="store_true", help="the grid with two checks against the same without")
    parser.add_argument("--rounds", type=int, default=3, help="with --checks: turns each")
    parser.add_argument("--history", action="store_true",
                        help="record each grid in a throwaway history file (off: as grids were before they were recorded)")
    parser.add_argument("--history-cost", action="store_true",
                        help="the grid kept out of the history against the same recorded in it, taking turns")
    args = parser.parse_args()
    if args.history or args.history_cost:  # never the user's own history file
        import os
        import tempfile

        os.environ["GRIDLLM_HISTORY"] = str(Path(tempfile.mkdtemp(prefix="gridllm-bench-")) / "history.sqlite3")
    if args.checks:
        checks_cost(args.jobs, args.rounds)
        return
    if args.history_cost:
        history_cost(args.jobs, [int(n) for n in args.max_live.split(",")], args.rounds)
        return
    rows = []
    names = {"GETs": "GETs", "bulk": "bulk POST", "watch": "watch stream"}
    for offer in args.offers.split(","):
        with Server(bulk=offer != "GETs", watch=offer == "watch") as url:
            for max_live in (int(n) for n in args.max_live.split(",")):
                # (the stream is compared with the bulk request, both with batched submits)
                for batched in (True,) if args.no_before or offer == "watch" else (False, True):
                    got = asyncio.run(one_grid(url, args.jobs, max_live, batched, history=args.history))
                    rows.append((names[offer], max_live, batched, got))
                    print(f"{offer} max_live={max_live} batched={batched}: {got}", file=sys.stderr)
    print(f"\n{args.jobs} jobs x 1 model, 6 s each, polled every 0.3 s; process CPU / wall of the whole grid:\n")
    print("| status requests | max_live | submits | wall | CPU | share of one core | updates |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for offer, max_live, batched, got in rows:
        print(f"| {offer} | {max_live} | {'batched' if batched else 'one POST per job'} "
              f"| {got['wall']:.1f} s | {got['cpu']:.2f} s "
              f"| **{100 * got['cpu'] / got['wall']:.1f}%** | {got['updates']} |")


def checks_cost(jobs: int, rounds: int) -> None:
    """The same grid without and with two checks, taking turns; the CPU ratio of their totals."""
    off, on = taking_turns(jobs, 100, rounds, "checks")
    print(f"\n{jobs} jobs x 1 model, max_live 100, bulk status, {rounds} turns each; process CPU:\n")
    print("| checks | CPU per grid |\n|---|---:|")
    print(f"| none | {off:.2f} s |\n| {', '.join(CHECKS)} | {on:.2f} s |")
    print(f"\nratio: **{on / off:.2f}x** (target: at most 1.2x)")


def history_cost(jobs: int, max_lives: list[int], rounds: int) -> None:
    """The same grid kept out of the history and recorded in it, taking turns."""
    print(f"\n{jobs} jobs x 1 model, bulk status, {rounds} turns each; process CPU per grid:\n")
    print("| max_live | not recorded | recorded in the history | ratio |\n|---:|---:|---:|---:|")
    for max_live in max_lives:
        off, on = taking_turns(jobs, max_live, rounds, "history")
        print(f"| {max_live} | {off:.2f} s | {on:.2f} s | {on / off:.2f}x |")


def taking_turns(jobs: int, max_live: int, rounds: int, feature: str) -> tuple[float, float]:
    """Mean process CPU of the grid without and with ``feature`` (``checks`` or ``history``), in turns."""
    cpu = {False: 0.0, True: 0.0}
    with Server(bulk=True, watch=False) as url:
        for turn in range(rounds):
            for on in (False, True) if turn % 2 == 0 else (True, False):
                got = asyncio.run(one_grid(url, jobs, max_live, True, **{feature: on}))
                cpu[on] += got["cpu"]
                print(f"{feature}={on}: {got}", file=sys.stderr)
    return cpu[False] / rounds, cpu[True] / rounds


if __name__ == "__main__":
    main()
