"""A throwaway PostgreSQL server on a free loopback port (Debian's binaries), for the tests
that run the database on Postgres as well as SQLite."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .processes import free_port


def postgres_bin() -> Path:
    """The directory of initdb and postgres; a skip without them, a failure under CI."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = Path(found[-1]) if found else None
    if initdb is None and shutil.which("initdb"):
        initdb = Path(str(shutil.which("initdb")))
    if initdb is None:
        message = "PostgreSQL is not installed (apt-get install postgresql; CI installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return initdb.parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="postgres-"))
        self.process: subprocess.Popen[bytes] | None = None
        # Postgres refuses to run as root: run it as the `postgres` user where we are root.
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data = self.dir / "data"
        subprocess.run(
            [*self._prefix, str(self.bin / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.process = subprocess.Popen(
            [*self._prefix, str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
             "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.2)  # accepting connections, then ready for logins
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail("postgres did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)
