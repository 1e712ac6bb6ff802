"""Real services for tests, written once: an ``mlflow server`` on 127.0.0.1 and a private PostgreSQL cluster.

Both can be stopped and started again on the same store (outage tests). A service that cannot be found or
started fails the test with a message naming what is missing, never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """``mlflow server`` on a SQLite store and an artifact folder under ``root``, in its own process group."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        if not mlflow_bin.exists():
            pytest.fail(f"the mlflow CLI is missing next to {sys.executable}; install trainpipe's deps (make install)")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        with (self.root / "server.log").open("a") as log:
            self.proc = subprocess.Popen(
                [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{self.root}/server.db",
                 "--artifacts-destination", str(self.root / "server-artifacts"), "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Kill the whole process group (its workers take seconds to exit after SIGTERM)."""
        if self.proc is None:
            return
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        self.proc.wait()
        self.proc = None


# -- PostgreSQL (Debian's package) ------------------------------------------------------------------------


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    pytest.fail("PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin or on PATH. Install "
                "Debian's package (apt-get install -y postgresql); .ci/run does this on a fresh machine.")


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    if shutil.which("runuser") is None:
        pytest.fail("running as root, PostgreSQL's initdb must run as another user, and runuser is missing")
    return ["runuser", "-u", "postgres", "--", *args]


class PostgresCluster:
    """A private cluster (its own data folder and port, trust auth) that a test may stop and start again."""

    def __init__(self) -> None:
        self.bindir = _pg_bin()
        self.base = Path(tempfile.mkdtemp(prefix="trainpipe-pg-"))
        self.data, self.log = self.base / "data", self.base / "server.log"
        self.port = free_port()
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
                pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        run = subprocess.run(_as_postgres([str(self.bindir / "initdb"), "-A", "trust", "-U", "postgres", "-D",
                                           str(self.data)]), capture_output=True, text=True)
        if run.returncode != 0:
            pytest.fail(f"initdb failed: {run.stderr[-2000:]}")

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c max_connections=200"
        run = subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                                           str(self.log), "-w", "-t", "60", "start"]), capture_output=True, text=True)
        if run.returncode != 0:
            server_log = self.log.read_text()[-2000:] if self.log.exists() else ""
            pytest.fail(f"PostgreSQL did not start: {run.stderr[-2000:]} {server_log}")

    def createdb(self, name: str) -> None:
        created = subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                  "postgres", name], capture_output=True, text=True)
        if created.returncode != 0:
            pytest.fail(f"createdb failed: {created.stderr}")

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       capture_output=True, text=True)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
