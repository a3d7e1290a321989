"""Fan-out benchmark: jobs/min of one local service over 1, 2 and 3 upstream engines.

Each upstream is ``benchmarks/slowmodel.py`` in its own process: an
OpenAI-compatible server that streams at a fixed rate (default 50 tokens/s)
with at most ``--slots`` answers at once, a stand-in for one GPU host whose
throughput does not depend on this 2-core machine. For each configuration the
real service (``start_service`` with a ``--models`` TOML naming the stubs in
``urls``) runs the same batch (default 24 jobs x 64 tokens, one ``POST
/jobs``), polled with ``GET /jobs/{ids}`` until every job is terminal; wall
time is from the POST to the last job's end.

Ideal: jobs x tokens / (rate x slots x upstreams) seconds, so the speed-up
should be close to the number of upstreams.

    python benchmarks/fanout.py [--jobs 24] [--tokens 64] [--rate 50] [--slots 2] [--max-upstreams 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridllm_nb.service.launcher import free_port, start_service

TAG = "slow:fanout"
TERMINAL = ("completed", "error", "cancelled")


def start_stub(rate: float, slots: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "slowmodel.py"), "--port", str(port),
                                "--rate", f"{rate:g}", "--slots", str(slots)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"stub on port {port} did not start")
        time.sleep(0.05)


def run_config(upstreams: int, args: argparse.Namespace, workdir: Path) -> dict:
    stubs = [start_stub(args.rate, args.slots) for _ in range(upstreams)]
    urls = [url for _, url in stubs]
    models = workdir / f"models-{upstreams}.toml"
    models.write_text(f'[models."{TAG}"]\nbackend = "openai"\nmodel = "slow"\n'
                      f"urls = {json.dumps(urls)}\nconcurrency_per_url = {args.slots}\n", encoding="utf-8")
    service = start_service(models=models, db=workdir / f"jobs-{upstreams}.sqlite3")
    try:
        inputs = [f"job {n}" for n in range(args.jobs)]
        body = {"app": "gridrepublic:text-inference", "tag": TAG,
                "commandLine": json.dumps({"inputs": inputs, "options": {"max_tokens": args.tokens}})}
        with httpx.Client(timeout=30) as client:
            start = time.perf_counter()
            ids = client.post(f"{service.url}/jobs", json=body).json()["ids"]
            while True:
                jobs = client.get(f"{service.url}/jobs/{','.join(ids)}").json()["jobs"]
                if all(job["vmStatus"] in TERMINAL for job in jobs.values()):
                    wall = time.perf_counter() - start
                    break
                time.sleep(0.1)
        states = Counter(job["vmStatus"] for job in jobs.values())
        tokens = sum(job["states"]["default"]["log"].count(" ") for job in jobs.values())
        if states["completed"] != args.jobs or tokens != args.jobs * args.tokens:
            raise RuntimeError(f"{upstreams} upstream(s): {dict(states)}, {tokens} tokens")
        return {"upstreams": upstreams, "jobs": args.jobs, "wall": wall, "per_min": args.jobs / wall * 60}
    finally:
        service.stop()
        for process, _ in stubs:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s of each stub answer")
    parser.add_argument("--slots", type=int, default=2, help="answers each stub streams at once")
    parser.add_argument("--max-upstreams", type=int, default=3)
    args = parser.parse_args()
    ideal = args.jobs * args.tokens / (args.rate * args.slots)
    print(f"{args.jobs} jobs x {args.tokens} tokens; each upstream: {args.rate:g} tokens/s per answer, "
          f"{args.slots} at once (ideal wall with 1 upstream: {ideal:.1f} s)\n")
    with tempfile.TemporaryDirectory(prefix="gridllm_fanout_") as tmp:
        rows = [run_config(n, args, Path(tmp)) for n in range(1, args.max_upstreams + 1)]
    print("| upstreams | jobs | wall s | jobs/min | speed-up vs 1 |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['upstreams']} | {row['jobs']} | {row['wall']:.2f} | {row['per_min']:.0f} | "
              f"{rows[0]['wall'] / row['wall']:.2f}x |")


if __name__ == "__main__":
    main()
