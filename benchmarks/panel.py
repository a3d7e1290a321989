"""What the panel costs on the wire and in the kernel while cards stream.

Every widget comm is replaced by a counting one (``comm.create_comm`` is
the documented hook), so each ``comm_open`` and ``comm_msg`` payload is
measured exactly as ipykernel would serialise it (JSON, UTF-8), per card:
the card's ``CardWidget`` (its comm_open with the ES module, and the
``custom`` messages that carry text deltas, state changes and errors) and
its layout (``Widget.send`` goes through
``comm.send`` -> ``publish_msg``, which is what is counted). Jupyter's message envelope (header, signature) is the same for any
widget library and is left out.

Two scenarios:

* ``real``: the local service (started here unless ``--url``), every model
  it lists (up to 3), a real answer of ``--max-tokens`` tokens, then a
  second prompt on the same panel (the cards' widgets are reused);
* ``synthetic``: three cards fed by an in-process fake jobs API whose logs
  grow like a fast small model (``--chars`` characters at ``--rate``
  characters per second), to see the long-answer behaviour.

Metrics: comm bytes per card vs the final text size (target <= 2x), widget
flushes per second per card (target <= ~10), and kernel CPU while the
cards stream (process CPU time / wall time; the service runs in its own
process and is not included).

    python benchmarks/panel.py [--url URL] [--max-tokens 64] [--skip-real] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from collections import defaultdict
from typing import Any

import comm as comm_pkg
import httpx
from comm.base_comm import BaseComm

SENT: dict[str, int] = defaultdict(int)
MSGS: dict[str, int] = defaultdict(int)
CUSTOM: dict[str, int] = defaultdict(int)  # of which custom messages (text deltas / resets)


class CountingComm(BaseComm):
    """A comm that measures what it would send instead of sending it."""

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:
        size = len(json.dumps(data or {}, default=str, ensure_ascii=False).encode())
        size += sum(len(b) for b in buffers or [])
        SENT[self.comm_id] += size
        MSGS[self.comm_id] += 1
        if isinstance(data, dict) and data.get("method") == "custom":
            CUSTOM[self.comm_id] += 1


comm_pkg.create_comm = lambda *a, **k: CountingComm(*a, **k)

from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.poller import PollSettings
from gridllm_nb.notebook.panel import Panel
from gridllm_nb.widgets.card import BYTE_BUDGET, MAX_STALE


def tree_ids(widget: Any) -> set[str]:
    """Model ids of a widget and everything it references (children, layout, style)."""
    import ipywidgets as w

    seen: set[str] = set()
    stack = [widget]
    while stack:
        x = stack.pop()
        if not isinstance(x, w.Widget) or x.model_id in seen:
            continue
        seen.add(x.model_id)
        for name in x.keys:
            value = getattr(x, name, None)
            if isinstance(value, w.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, w.Widget))
    return seen


def card_ids(card: Any) -> set[str]:
    """Every widget a card owns: its ``CardWidget`` and the layout it shares with the other cards
    (counted in full for each card, so the set-up figure errs high)."""
    return tree_ids(card.widget)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Rates:
    """Per-card flush timestamps, to find the busiest one-second window."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)

    def hook(self, panel: Panel) -> None:
        for tag, card in panel.cards.items():
            original = card.flush

            def flush(original=original, tag=tag) -> None:
                if card_pending(panel.cards[tag]):
                    self.times[tag].append(time.monotonic())
                original()

            card.flush = flush  # type: ignore[method-assign]

    def max_window(self, tag: str) -> int:
        ts = self.times[tag]
        best, j = 0, 0
        for i, t in enumerate(ts):
            while ts[j] < t - 1.0:
                j += 1
            best = max(best, i - j + 1)
        return best


def card_pending(card: Any) -> bool:
    return card._pending


async def measure(panel: Panel, tags: list[str], prompt: str) -> list[dict[str, Any]]:
    for tag in tags:
        panel.checkboxes[tag].value = True
    panel.prompt.value = prompt
    rates = Rates()
    before = dict(SENT)
    msgs_before, custom_before = dict(MSGS), dict(CUSTOM)
    t0, c0 = time.monotonic(), cpu()
    panel.process_button.click()
    rates.hook(panel)
    after_click = {k: v for k, v in SENT.items()}
    results = await panel.wait()
    wall, used = time.monotonic() - t0, cpu() - c0
    rows = []
    for tag in tags:
        card = panel.cards[tag]
        ids = card_ids(card)
        sent = sum(SENT[i] - before.get(i, 0) for i in ids)
        msgs = sum(MSGS[i] - msgs_before.get(i, 0) for i in ids)
        custom = sum(CUSTOM[i] - custom_before.get(i, 0) for i in ids)
        setup = sum(after_click.get(i, 0) - before.get(i, 0) for i in ids)
        text = results[tag].text
        size = len(text.encode())
        first = rates.times[tag][0] if rates.times[tag] else t0
        span = max(1e-9, (rates.times[tag][-1] - first) if len(rates.times[tag]) > 1 else wall)
        rows.append({
            "tag": tag, "state": results[tag].state.label, "text_bytes": size, "comm_bytes": sent,
            "ratio": sent / size if size else float("inf"), "setup": setup, "stream": sent - setup,
            "stream_ratio": (sent - setup) / size if size else float("inf"), "flushes": card.flushes,
            "per_s": card.flushes / span, "max_1s": rates.max_window(tag),
            "messages": msgs, "custom": custom, "wall": wall, "cpu": used,
        })
    return rows


def synthetic_transport(chars: int, rate: float) -> httpx.MockTransport:
    """A jobs API whose answers grow at ``rate`` chars/s up to ``chars`` (markdown-ish prose)."""
    words = ["The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog;", "results", "vary", "with", "temperature,", "**context**", "and", "`seed`."]
    body: list[str] = []
    i = 0
    while sum(len(w) + 1 for w in body) < chars:
        body.append(words[i % len(words)] + ("\n" if i % 13 == 12 else ""))
        i += 1
    full = " ".join(body)[:chars]
    jobs: dict[str, float] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path.split("/remotejobs/v2", 1)[-1]
        now = time.monotonic()
        if path == "/models":
            return httpx.Response(200, json={"success": True,
                                             "models": [{"tag": t} for t in ("synth:a", "synth:b", "synth:c")]})
        if request.method == "POST" and path == "/jobs":  # one job per input, as the local service
            ids = [uuid.uuid4().hex for _ in json.loads(json.loads(request.content)["commandLine"])["inputs"]]
            jobs.update(dict.fromkeys(ids, now))
            return httpx.Response(200, json={"success": True, "ids": ids})
        if request.method != "GET" or not path.startswith("/jobs/"):  # no bulk status, no watch stream
            return httpx.Response(404, text="Not Found")
        out = {}
        for job_id in path[len("/jobs/"):].split(","):
            n = int((now - jobs[job_id]) * rate)
            status = "completed" if n >= len(full) else "running"
            out[job_id] = {"vmStatus": status, "states": {"default": {"status": status, "log": full[:n]}},
                           "tag": "synth", "runtime": 0}
        return httpx.Response(200, json={"success": True, "jobs": out})

    return httpx.MockTransport(handle)


def knobs(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"max_stale": args.max_stale, "markdown": args.markdown}
    out["byte_budget"] = None if args.byte_budget <= 0 else args.byte_budget
    return out


def mode(args: argparse.Namespace) -> str:
    return "markdown mode" if args.markdown else "plain mode"


def table(title: str, rows: list[dict[str, Any]]) -> str:
    cpu_share = 100 * rows[0]["cpu"] / rows[0]["wall"]
    head = (f"**{title}** (wall {rows[0]['wall']:.1f} s, kernel CPU {rows[0]['cpu']:.2f} s "
            f"= {cpu_share:.1f}% of one core)")
    out = [head, "",
           ("| card | state | final text (B) | card setup (B) | streaming (B) | total / text | "
            "streaming / text | flushes | flushes/s | max in 1 s | messages | of which text deltas |"),
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['tag']} | {r['state']} | {r['text_bytes']} | {r['setup']} | {r['stream']} | "
                   f"{r['ratio']:.2f}x | {r['stream_ratio']:.2f}x | "
                   f"{r['flushes']} | {r['per_s']:.1f} | {r['max_1s']} | {r['messages']} | {r['custom']} |")
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> None:
    outputs = []
    if not args.skip_real:
        service = None
        url = args.url
        if url is None:
            from gridllm_nb.service.launcher import start_service

            service = start_service(timeout=300)
            url = service.url
        try:
            panel = Panel(url=url, options={"max_tokens": args.max_tokens, "temperature": 0}, **knobs(args))
            await panel.loaded()
            tags = list(panel.checkboxes)[:3]
            if not tags:
                raise SystemExit(f"the service at {url} lists no models: {panel.status.value}")
            # warm-up run (model load) so the measured run is the steady state
            warm = Panel(tags, url=url, options={"max_tokens": 2, "temperature": 0})
            await measure(warm, tags, "Hi")
            rows = await measure(panel, tags, args.prompt)
            outputs.append(table(f"Real local models, max_tokens={args.max_tokens}, {mode(args)}", rows))
            # the same panel again: each model keeps its card widget, so no second set-up
            rows = await measure(panel, tags, args.second_prompt)
            outputs.append(table(f"Real local models, second run on the same panel, {mode(args)}", rows))
        finally:
            if service is not None:
                service.stop()
    for chars in args.chars:
        client = JobsClient("http://synthetic.invalid/remotejobs/v2",
                            transport=synthetic_transport(chars, args.rate))
        panel = Panel(client=client, poll=PollSettings(fast=0.3), **knobs(args))
        await panel.loaded()
        rows = await measure(panel, list(panel.checkboxes), "go")
        outputs.append(table(f"Synthetic, 3 cards x {chars} chars at {args.rate:g} chars/s, poll 0.3 s, "
                             f"{mode(args)}", rows))
    print("\n\n".join(outputs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="jobs API base (default: start the local service)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--prompt", default="Explain in a few sentences why the sky is blue.")
    p.add_argument("--second-prompt", default="And why are sunsets red?")
    p.add_argument("--skip-real", action="store_true", help="only the synthetic scenario")
    p.add_argument("--chars", type=int, nargs="*", default=[400, 4000])
    p.add_argument("--rate", type=float, default=200.0, help="synthetic chars per second per card")
    p.add_argument("--markdown", action="store_true", help="cards in markdown mode")
    p.add_argument("--byte-budget", type=float, default=BYTE_BUDGET, help="0: flush every update")
    p.add_argument("--max-stale", type=float, default=MAX_STALE)
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
