import re, time
from typing import Any
import pytest
from .conftest import write_notebook
from .test_panel_browser import expect, open_and_run, slug

pytestmark = pytest.mark.browser

DIAG = '''import sys, threading, traceback
print(repr(panel.task), panel.running)
for tag, r in panel.results.items(): print(tag, r.state, repr(r.text[-20:]))
for tag, c in panel.cards.items(): print(tag, c.state, c._pending, c._handle, c.flushes, repr(c.widget.value[-12:]), c.widget.live("state"))
names = {t.ident: t.name for t in threading.enumerate()}
for ident, frame in sys._current_frames().items():
    n = names.get(ident, '?')
    if n.startswith('gridllm') or 'subshell' in n or n == 'MainThread':
        print('---', n); print(''.join(traceback.format_stack(frame)[-8:]))
'''

def test_dbg(page: Any, lab: Any, fake_api: Any, monkeypatch) -> None:
    from tests.fakes import words_script
    from .test_magic_browser import prompt_of, timed_jobs
    fake, url = fake_api
    fake.models = ["m:1", "n:1"]
    words = " ".join(f"w{i}" for i in range(12))
    for tag in fake.models:
        fake.scripts[tag] = words_script(f"{tag} {words} end")
    timed_jobs(fake, monkeypatch)
    write_notebook(lab.root / "dbg.ipynb",
                   "from gridllm_nb import Panel\nfrom gridllm_nb.api.poller import PollSettings\n"
                   f"panel = Panel(url={url!r}, poll=PollSettings(fast=0.1, slow=0.1))\npanel",
                   "import time\ntime.sleep(12)", DIAG)
    t0 = time.monotonic()
    log = []
    def frame(direction, payload):
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        for key in ("resync", "\"have\"", "\"reset\"", "\"append\"", "comm_open", "subshell_id"):
            if key in text:
                i = text.find('"msg_type"')
                sub = text.find('"subshell_id"')
                log.append((round(time.monotonic() - t0, 2), direction, key, text[i:i+30], text[sub:sub+60] if sub >= 0 else "", text[text.find(key):text.find(key)+60] if key != "subshell_id" else ""))
                break
    page.on("websocket", lambda ws: (ws.on("framesent", lambda p: frame("->", p)), ws.on("framereceived", lambda p: frame("<-", p))))
    open_and_run(page, lab, "dbg.ipynb")
    cells = page.locator(".jp-CodeCell")
    t0 = time.monotonic()
    panel = page.locator(".gridllm-panel").first
    for tag in fake.models:
        box = panel.locator(f".gridllm-model-{slug(tag)} input[type=checkbox]")
        expect()(box).to_be_enabled(timeout=10_000)
        box.check()
    print("ticked", time.monotonic() - t0)
    prompt = panel.locator(".gridllm-prompt textarea")
    prompt.press_sequentially("count")
    print("typed", time.monotonic() - t0)
    panel.locator("button.gridllm-process").click()
    print("clicked", time.monotonic() - t0)
    for _ in range(30):
        print(round(time.monotonic() - t0, 1), prompt_of(cells.nth(1)), panel.locator(".gridllm-card-m-1 .gridllm-text").inner_text()[:40] if panel.locator(".gridllm-card-m-1").count() else "")
        time.sleep(0.5)
    cells.nth(2).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    time.sleep(3)
    for i in range(3):
        print("OUT", i, cells.nth(i).locator(".jp-OutputArea").inner_text()[:1500])
    for entry in log[-12:]:
        if entry[2] != "subshell_id" or "comm_msg" in entry[3]:
            print(entry)
