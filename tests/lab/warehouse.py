"""The warehouse: PostgreSQL 15 of this machine, alone in the warehouse namespace.

It listens on the warehouse address only and admits password logins (scram-sha-256) from
the bastion's side of the inner link, so the one way in from the operator is an SSH
tunnel through the bastion, as with a private Redshift cluster.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.lab.cache import POSTGRES_BIN, database_template
from tests.lab.state import ProcessRef

DB_NAME = "analytics"
DB_USER = "dbt"
DB_PORT = 5432


class LabWarehouseError(RuntimeError):
    """PostgreSQL did not start or stop as asked; the message carries its log's tail."""


@dataclass
class Warehouse:
    """One lab's database server; its files live in `<lab dir>/warehouse`."""

    netns: str
    folder: Path
    address: str
    client_network: str
    port: int = DB_PORT

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def create(self) -> None:
        """A cluster copied from the cached template, set up for this lab's addresses."""
        self.folder.mkdir(mode=0o700)
        self.socket_dir.mkdir(mode=0o700)
        subprocess.run(["cp", "-a", str(database_template()), str(self.data_dir)], check=True)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{self.address}'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "max_connections = 20\nshared_buffers = 16MB\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        # Local socket (root and postgres only: the folder is 0700) for the lab's own set-up;
        # over TCP, passwords from the bastion's side of the inner link and nothing else.
        (self.data_dir / "pg_hba.conf").write_text(
            f"local all postgres trust\nhost all all {self.client_network} scram-sha-256\n"
        )
        for path in (self.folder, self.socket_dir):  # the copied cluster is postgres's
            shutil.chown(path, "postgres", "postgres")

    def start(self, *, detached: bool = False) -> ProcessRef:
        """Start the server and wait until it accepts connections; returns the postmaster."""
        command = (
            f"{POSTGRES_BIN}/pg_ctl -D {shlex.quote(str(self.data_dir))} "
            f"-l {shlex.quote(str(self.log))} -w -t 20 start"
        )
        result = subprocess.run(
            ["ip", "netns", "exec", self.netns, "su", "postgres", "-c", command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            start_new_session=detached,
        )
        postmaster = self.postmaster()
        if result.returncode != 0 or postmaster is None:
            raise LabWarehouseError(f"PostgreSQL did not start: {result.stderr}{self._log_tail()}")
        return postmaster

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT): sessions end, data stays for the next start."""
        postmaster = self.postmaster()
        if postmaster is None:
            return
        postmaster.kill(signal.SIGINT)
        if not postmaster.wait_gone(timeout):
            raise LabWarehouseError(f"PostgreSQL did not stop in {timeout:.0f} s")

    def postmaster(self) -> ProcessRef | None:
        """The running postmaster, from the pid file it keeps in the data directory."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return ProcessRef.of(pid)

    def superuser(self) -> psycopg.Connection[tuple[Any, ...]]:
        """PostgreSQL's superuser over the unix socket (a file: no namespace involved)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        )

    def create_login(self, database: str = DB_NAME, user: str = DB_USER) -> str:
        """A login role owning a fresh database; returns the role's (random) password."""
        password = secrets.token_urlsafe(18)
        with self.superuser() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            # CREATE DATABASE cannot run inside a transaction block: its own statement.
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(user)
                )
            )
        return password

    def _log_tail(self) -> str:
        try:
            return "\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""


def stop_postmaster(postmaster: ProcessRef | None, timeout: float = 5.0) -> None:
    """Teardown's stop: immediate shutdown (SIGQUIT), which still frees shared memory."""
    if postmaster is None:
        return
    postmaster.kill(signal.SIGQUIT)
    if not postmaster.wait_gone(timeout):
        postmaster.kill(signal.SIGKILL)
        postmaster.wait_gone(timeout)
