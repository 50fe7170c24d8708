"""Real services for the tests, on loopback, in temporary directories, stopped afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.3)
    raise TimeoutError(f"timed out waiting for {what}")


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL server in a fresh temporary directory; yields the URI of an empty database."""
    bindir = postgres_bin()
    assert bindir is not None, "PostgreSQL server binaries not found"
    # Directly under /tmp: the postgres user cannot traverse pytest's root-only directories.
    tmp = Path(tempfile.mkdtemp(prefix="tinygpt-pg-"))
    data, port = tmp / "pgdata", free_port()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(tmp, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*as_postgres, *cmd], check=True, capture_output=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        opts,
        "-l",
        str(tmp / "pg.log"),
        "-w",
        "start",
    )
    try:
        run(
            str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]
        subprocess.run([*as_postgres, *stop], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, tmp: Path, command: str = "server") -> Iterator[str]:
    """``mlflow server`` (or ``mlflow ui``, as a user opens a local store: artifacts where the
    runs wrote them) on a free loopback port; yields its http URI."""
    port = free_port()
    log = (tmp / f"mlflow-{command}-{port}.log").open("w")
    artifacts = ["--artifacts-destination", str(tmp / "artifacts")] if command == "server" else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            command,
            "--backend-store-uri",
            backend_uri,
            *artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp,
    )
    uri = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: see {log.name}")
            return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200

        wait_until(up, 120, "mlflow server")
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()
