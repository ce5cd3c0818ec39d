"""Helpers for the UI test (imported by name: `conftest` is ambiguous across test folders).

- `Webserver`: `dagster-webserver` started as a subprocess in its own session, with a temporary
  DAGSTER_HOME, registry and store; every process it starts (code server, run workers, step
  processes) carries a marker environment variable, so the test can prove none is left behind.
- `graphql`: a plain POST to `/graphql`.
- `chromium`: headless Chromium (`--dump-dom` / `--screenshot`), also in its own session.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WEBSERVER = Path(sys.executable).with_name("dagster-webserver")
MARKER = "SYNERGY_UI_TEST_MARKER"

# DAGSTER_HOME for the test: no telemetry, no first-run dialogs, and runs start at once without a daemon.
DAGSTER_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
code_servers:
  local_startup_timeout: 300
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(DAGSTER_YAML)
    return path


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    """POST a query; return `data`, raising on transport or GraphQL errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


# ------------------------------------------------------------------ processes

def _proc_info(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, session) from /proc/<pid>/stat; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[2]), int(fields[3])


def _has_marker(pid: int, token: str) -> bool:
    try:
        return f"{MARKER}={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def live_processes(token: str, sessions: set[int]) -> dict[int, str]:
    """Live (non-zombie) processes that carry the marker or belong to one of `sessions`: pid -> command."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        info = _proc_info(pid)
        if info is None or info[0] in ("Z", "X"):
            continue
        if info[2] in sessions or _has_marker(pid, token):
            found[pid] = _cmdline(pid)
    return found


def kill_session(leader: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(leader, sig)
    except (ProcessLookupError, PermissionError):
        pass


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


# ------------------------------------------------------------------ the webserver

class Webserver:
    """`dagster-webserver -w workspace.yaml` on a free port, against a temporary instance, registry and store."""

    def __init__(self, tmp: Path, registry: Path, store: Path):
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.home = write_dagster_home(tmp / "dagster_home")
        self.store = store
        self.log_path = tmp / "webserver.log"
        self.env = {**os.environ, "DAGSTER_HOME": str(self.home), "SYNERGY_REGISTRY": str(registry),
                    "SYNERGY_STORE": str(store), "PYTHONUNBUFFERED": "1", MARKER: self.token}
        self.proc: subprocess.Popen | None = None
        self.sessions: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Webserver":
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(WEBSERVER), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.sessions.add(self.proc.pid)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        # drop ANSI colours so the tail reads well in pytest's report
        return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()[-lines:])

    def fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\n--- dagster-webserver log ({self.log_path}), last lines ---\n"
                              f"{self.log_tail()}")

    def wait_ready(self, timeout: float = 180) -> float:
        """Wait until /server_info answers and the code location is loaded; return the seconds waited."""
        start = time.monotonic()
        deadline = start + timeout
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                    locationOrLoadError { __typename ... on PythonError { message } } } }
                    ... on PythonError { message } } }"""
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.fail(f"dagster-webserver exited with code {self.proc.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as r:
                    r.read()
                ws = graphql(self.port, query, timeout=10)["workspaceOrError"]
                entries = ws.get("locationEntries") or []
                if ws["__typename"] != "Workspace":
                    last = f"workspace: {ws}"
                elif entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    if errors:
                        raise self.fail(f"code location failed to load: {errors[0]['locationOrLoadError']['message']}")
                    return time.monotonic() - start
                else:
                    last = f"locations: {[(e['name'], e['loadStatus']) for e in entries]}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(1)
        raise self.fail(f"dagster-webserver did not answer with a loaded code location within {timeout:.0f}s "
                        f"(last: {last})")

    def leftovers(self) -> dict[int, str]:
        return live_processes(self.token, self.sessions)

    def stop(self, grace: float = 30) -> dict[int, str]:
        """SIGTERM every session started here, then SIGKILL what remains; return what was still alive after that."""
        for leader in self.sessions:
            kill_session(leader, signal.SIGTERM)
        deadline = time.monotonic() + grace
        if self.proc is not None:
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.5)
        for leader in self.sessions:
            kill_session(leader, signal.SIGKILL)
        for pid in self.leftovers():  # marked processes that left the sessions
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.wait(timeout=10)
        time.sleep(0.5)
        return self.leftovers()

    # ---------------------------------------------------------------- a browser

    def chromium(self, binary: str, url: str, out_dir: Path, *mode: str, window: str = "1920,1080",
                 budget_ms: int = 20000, timeout: float = 120) -> subprocess.CompletedProcess:
        """Headless Chromium on `url` with a fresh profile; `mode` is `--dump-dom` or `--screenshot=<path>`."""
        profile = out_dir / f"chromium-profile-{uuid.uuid4().hex[:8]}"
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", f"--user-data-dir={profile}",
                f"--window-size={window}", f"--virtual-time-budget={budget_ms}", *mode, url]
        proc = subprocess.Popen(args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.sessions.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"chromium did not finish within {timeout:.0f}s on {url}:\n"
                                 f"{err.decode(errors='replace')[-2000:]}")
        finally:
            kill_session(proc.pid, signal.SIGKILL)  # helpers (zygote, crashpad) that outlived the browser
            shutil.rmtree(profile, ignore_errors=True)
        return subprocess.CompletedProcess(args, proc.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))
