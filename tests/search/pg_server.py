"""A throw-away PostgreSQL server for tests: the Debian package's binaries, a temporary data folder, a random
free port on 127.0.0.1 only (no other address, no Unix socket outside the data folder), trust auth.

`initdb` refuses to run as root, so as root the server runs as the `postgres` user; the data folder lives
outside pytest's tmp_path, which that user cannot enter. Tests skip (with the reason) only when no
PostgreSQL binaries exist.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def find_bin_dir() -> Path | None:
    """Folder holding initdb/pg_ctl/postgres: PATH first, then /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(cands[-1]).parent if cands else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bin_dir: Path
    data_dir: Path
    port: int
    user: str  # the OS user running the server ("" = the current one)

    @property
    def base_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def url(self, db: str) -> str:
        return f"{self.base_url}/{db}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                                 "-w", "stop"), capture_output=True, timeout=60)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_server() -> PgServer:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine; install the Debian package "
                    "postgresql to run the multi-worker tests")
    user = ""
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run initdb as")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="edgenas-pg-"))
    data = root / "data"
    if user:
        shutil.chown(root, user)
    os.chmod(root, 0o700)
    run = (lambda *a: ["runuser", "-u", user, "--", *a]) if user else (lambda *a: list(a))
    r = subprocess.run(run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
                           "-E", "UTF8", "--locale=C"), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {r.stderr.strip()}")
    port = free_port()
    # Loopback only; the Unix socket in the data folder; no fsync (a test database).
    opts = f"-h 127.0.0.1 -p {port} -k {data} -F -c max_connections=100"
    r = subprocess.run(run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", opts,
                           "-w", "-t", "60", "start"), capture_output=True, text=True, timeout=90)
    server = PgServer(bin_dir, data, port, user)
    if r.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        server.stop()
        raise RuntimeError(f"postgres did not start: {r.stderr.strip()} {log[-2000:]}")
    deadline = time.monotonic() + 30
    while True:  # pg_ctl -w returns when the server accepts connections; check the TCP port anyway
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("postgres does not accept connections on its port")
            time.sleep(0.1)
    return server


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
