"""A throw-away JupyterLab server: temporary copy of the notebooks, its own settings, quick mode.

Nothing the user owns is read or written: the Jupyter config, data, runtime, IPython and
JupyterLab settings/workspaces directories all live in the temporary folder, and the repository's
notebooks are copied there first (running them in the browser never modifies the repo).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# JupyterLab user settings (plugin id -> values), written into the test's own settings folder.
LAB_SETTINGS = {
    # every cell in the DOM (no lazy/windowed rendering), so every output can be inspected
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # no "would you like news?" toast, no update check, no popups over the notebook
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, path: str, method: str = "GET"):
        """Call the server's REST API (e.g. "/api/sessions") and return the decoded JSON."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lab_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


def server_environment(work: Path, threads: int) -> dict:
    """The caller's environment, isolated from the user's Jupyter state and put in quick mode."""
    env = dict(os.environ)
    for name in ["config", "data", "runtime", "ipython", "lab-settings", "lab-workspaces"]:
        (work / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_DATA_DIR=str(work / "data"),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"), IPYTHONDIR=str(work / "ipython"),
        JUPYTERLAB_SETTINGS_DIR=str(work / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(work / "lab-workspaces"),
        # quick mode always: this test checks what a student sees, not the full-size results
        COURSEKIT_QUICK="1",
        # share the trained backbone and the decoded data with the other tests (a lock serialises training)
        COURSEKIT_CACHE=os.environ.get("COURSEKIT_CACHE", str(REPO / "data" / "cache")),
    )
    # two kernels share the machine: give each its share of the cores instead of oversubscribing
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.pop("MPLBACKEND", None)  # a non-inline backend (Agg) would leave figures undrawn
    env.pop("JUPYTER_PATH", None)
    return env


def start(notebooks: list[Path], work: Path, threads: int = 1, timeout: float = 180) -> LabServer:
    """Copy `notebooks` into work/notebooks and serve them; return once the REST API answers."""
    root = work / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks:
        shutil.copy2(notebook, root / notebook.name)
    env = server_environment(work, threads)
    write_lab_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root
    log = work / "jupyter-lab.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}; its log "
                               f"({log}) ends with:\n{server.log_tail()}")
        try:
            server.api("/api/status")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"jupyter lab did not answer on {server.url} within {timeout:.0f} s; "
                       f"its log ({log}) ends with:\n{server.log_tail()}")
