"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` in a temporary folder,
``postgres`` on a free loopback port, removed again by :meth:`TempPostgres.stop`.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` system
user (created by Debian's ``postgresql`` package, which ``./run test`` installs).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from farsight.broker import free_port, wait_for_port
from farsight.errors import StoreError

SERVER_USER = "postgres"
SUPERUSER = "farsight"


def find_bin(name: str) -> str:
    """Path of a PostgreSQL server program (``initdb``, ``pg_ctl``, ``postgres``).

    Debian keeps them out of PATH in ``/usr/lib/postgresql/<version>/bin``; the newest wins.
    """
    for d in sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    ):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    found = shutil.which(name)
    if found:
        return found
    raise StoreError(
        f"PostgreSQL's {name} is not installed; `./run test` installs it"
        " (apt-get install postgresql)"
    )


class TempPostgres:
    """A PostgreSQL server in a temporary folder; ``url(db)`` connects to one of its databases."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="farsight-pg-"))
        self.port = free_port()
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise StoreError(
                    f"running as root needs the '{SERVER_USER}' system user to run PostgreSQL as"
                ) from None
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._run(
            [
                find_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )
        self._run(
            [
                find_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                (
                    f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
                ),
            ]
        )
        wait_for_port("127.0.0.1", self.port, timeout=30)

    def _run(self, cmd: list[str]) -> None:
        kwargs: dict = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=self.root, check=False, **kwargs
        )
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise StoreError(
                f"{Path(cmd[0]).name} failed ({proc.returncode}):"
                f" {proc.stderr.strip()[-2000:]} {log}"
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t", template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (the URL of another database of this
        server, which nothing may be connected to); returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run([find_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        except StoreError:
            pass  # already gone; the folder goes anyway
        deadline = time.monotonic() + 10
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)
