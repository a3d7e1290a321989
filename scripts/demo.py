"""`make demo`: the project as a new user first meets it.

On a terminal: start the embedded local service and JupyterLab on
notebooks/01-quickstart.ipynb, print the URL and how to stop.
Headless (no terminal, or HEADLESS=1): stream one prompt to both real
models through the CLI, then execute the quickstart notebook and print each
model's answer, so a script can check the whole path.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODELS = ["smollm2:135m", "gemma3:270m"]
PROMPT = "In one sentence: why is the sky blue?"


def headless() -> bool:
    return os.environ.get("HEADLESS") == "1" or not (sys.stdin.isatty() and sys.stdout.isatty())


def run_cli(url: str) -> int:
    cmd = [str(BIN / "gridllm-nb"), "run", PROMPT, "--url", url, "--option", "max_tokens=64"]
    for tag in MODELS:
        cmd += ["-m", tag]
    print("$ " + shlex.join(["gridllm-nb", *cmd[1:]]), flush=True)
    return subprocess.call(cmd)


def execute_quickstart(url: str) -> int:
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "01-quickstart.ipynb", as_version=4)
    os.environ["GRIDLLM_API_URL"] = url
    # The kernel talks to us over Unix sockets, not TCP: nothing listens on a port, and the
    # kernel has no "running over TCP without encryption" warning to print between the answers.
    with tempfile.TemporaryDirectory() as tmp:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(tmp) / "kernel"))
        try:
            NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": tmp}}).execute()
        finally:  # ours to stop (nbclient stops only kernels it made): else it finds its parent gone, and says so
            if km.has_kernel:
                km.shutdown_kernel()
    print("\n== notebooks/01-quickstart.ipynb executed; answers ==")
    found = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "<table" in data.get("text/html", ""):  # a %%gridllm cell's value: the answers side by side
                found += 1
                print(data["text/plain"].strip(), "\n")
    return 0 if found else 1


def main() -> int:
    from gridllm_nb.service.launcher import start_service

    data = Path.home() / ".local" / "share" / "gridllm_nb"
    data.mkdir(parents=True, exist_ok=True)
    print("starting the embedded local service (llama.cpp, SmolLM2 135M and Gemma 3 270M)...", flush=True)
    with start_service(db=data / "demo-jobs.sqlite3") as service:
        print(f"local service at {service.url}\n", flush=True)
        if headless():
            code = run_cli(service.url)
            return code or execute_quickstart(service.url)
        env = dict(os.environ, GRIDLLM_API_URL=service.url)
        lab = shutil.which("jupyter-lab", path=str(BIN)) or "jupyter-lab"
        print("starting JupyterLab on notebooks/01-quickstart.ipynb; Ctrl-C stops it and the service.\n")
        try:
            return subprocess.call(
                [lab, "--ip=127.0.0.1", "--no-browser", "notebooks/01-quickstart.ipynb"]
                + (["--allow-root"] if os.geteuid() == 0 else []),
                cwd=ROOT, env=env,
            )
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
