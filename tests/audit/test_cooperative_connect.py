"""Under the gevent worker psycopg2 connects asynchronously (psycogreen), where libpq ignores
``connect_timeout``: the audit connection must still give up on a database that never answers."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow

# the gevent worker's process, reduced to what matters: monkey-patched, psycopg2 cooperative
SCRIPT = textwrap.dedent("""
    import sys, time
    from gevent import monkey
    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg
    patch_psycopg()
    import psycopg2
    from modelplatform.audit import rows

    started = time.monotonic()
    try:
        rows.connect(sys.argv[1], connect_timeout=1)
    except psycopg2.OperationalError as exc:
        print(f"refused after {time.monotonic() - started:.2f}s: {exc}")
    else:
        print("connected?!")
""")


def test_a_database_that_accepts_and_never_answers_fails_the_cooperative_connect_in_time() -> None:
    # a real socket that completes the TCP handshake and then stays silent, like a hung server
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/db"
        started = time.monotonic()
        # bounded: without the timer the connect would wait for the kernel's TCP timeout
        out = subprocess.run([sys.executable, "-c", SCRIPT, url], capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - started
    assert out.stdout.startswith("refused after"), out.stdout + out.stderr
    assert "timeout expired" in out.stdout
    assert float(out.stdout.split()[2].rstrip("s:")) < 2.0
    assert elapsed < 15
