"""A real PgBouncer (Debian's ``pgbouncer``, installed by ``make pgbouncer``) in front of the test Postgres."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from support.processes import free_port, stop_group


def binary() -> str:
    """The pgbouncer executable; skips the test when it is missing (fails it on CI, where it must run)."""
    found = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if os.access(p, os.X_OK)), None)
    if found is None:
        reason = "pgbouncer is not installed (`make pgbouncer` installs Debian's package when root with apt)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run the PgBouncer tests")
        pytest.skip(reason)
    return found


@contextmanager
def pgbouncer(database_url: str, *, pool_mode: str = "transaction", pool_size: int = 2) -> Iterator[str]:
    """Run PgBouncer on a free loopback port in front of ``database_url``'s server; yields the URL of the
    same database through it. Stopped (and waited for) at the end."""
    exe = binary()
    target = make_url(database_url)
    socket_dir = target.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else (target.host or "127.0.0.1")
    # PgBouncer refuses to run as root: run it as whoever can reach the server's socket directory
    user = None
    if os.geteuid() == 0:
        owner = Path(host).stat().st_uid if host.startswith("/") else pwd.getpwnam("postgres").pw_uid
        user = pwd.getpwuid(owner).pw_name
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="modelplatform-pgbouncer-"))
    password = f" password={target.password}" if target.password else ""
    (workdir / "userlist.txt").write_text(f'"{target.username}" ""\n')
    (workdir / "pgbouncer.ini").write_text(f"""
[databases]
{target.database} = host={host} port={target.port or 5432} user={target.username}{password}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/userlist.txt
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 200
server_reset_query =
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
""")
    if user is not None:
        uid = pwd.getpwnam(user).pw_uid
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, uid, -1)
    argv = [exe, *(["-u", user] if user else []), str(workdir / "pgbouncer.ini")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError as refused:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "pgbouncer.log").read_text() if (workdir / "pgbouncer.log").exists() else ""
                    raise RuntimeError(f"pgbouncer did not start (exit {proc.poll()}): {log[-2000:]}") from refused
                time.sleep(0.1)
        yield make_url(f"postgresql://{target.username}@127.0.0.1:{port}/{target.database}").render_as_string(
            hide_password=False)
    finally:
        stop_group(proc, timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
