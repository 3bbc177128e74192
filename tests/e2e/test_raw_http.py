"""What a real gunicorn does with requests no HTTP library would send: malformed chunked bodies and
non-ASCII header bytes, written byte by byte on a raw socket."""
from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

from modelplatform.routing import assign
from modelplatform.settings import StoreLocation
from modelplatform.store import S3ModelStore
from support import Platform
from support.models import Echo, Pricer
from support.processes import gunicorn_web

pytestmark = pytest.mark.slow

PREDICT = "/models/echo/versions/1.0.0/predict"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, engine: sa.Engine,
           database_url: str) -> Iterator[tuple[Platform, str, Path]]:
    """One gunicorn (the Procfile command, one worker) for the module: an echo model and an A/B test
    sticky on ``/customer_id``. Yields the platform, the base URL and the server's log file."""
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    workdir = tmp_path_factory.mktemp("raw-http")
    platform = Platform(store=S3ModelStore(StoreLocation(bucket=bucket, prefix="registry")), engine=engine,
                        database_url=database_url, workdir=workdir)
    platform.add("echo", {"1.0.0": Echo()})
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")},
                 default="1.0.0", ab_test={"name": "sticky-split", "weights": {"1.0.0": 50, "1.1.0": 50},
                                           "sticky_key": "/customer_id"})
    log = workdir / "server.log"
    with gunicorn_web(platform.env(), workers=1, log_path=log) as base:
        yield platform, base, log


def crash_lines(log: Path) -> list[str]:
    """Log lines that report a crash: level ERROR or above, a logged exception, or a raw traceback."""
    crashes = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            if "Traceback" in line:
                crashes.append(line)
        elif event.get("level") in ("ERROR", "CRITICAL") or "exc" in event:
            crashes.append(line)
    return crashes


def exchange(base: str, request: bytes, *, close_write: bool = False, timeout: float = 10.0) -> bytes:
    """Send ``request`` on a new connection (then FIN when ``close_write``) and read until the server closes
    or ``timeout`` passes."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def chunked(path: str, chunks: bytes, extra_headers: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n").encode() + extra_headers + b"\r\n" + chunks


@pytest.mark.parametrize(("chunks", "close_write"), [
    pytest.param(b"0x22\r\n" + b'{"a": 1}' + b"\r\n0\r\n\r\n", False, id="hex-prefixed-size"),
    pytest.param(b"-1\r\n" + b'{"a": 1}' + b"\r\n0\r\n\r\n", False, id="negative-size"),
    pytest.param(b"40\r\n" + b'{"a": 1', True, id="truncated-then-FIN"),
    pytest.param(b"8\r\n" + b'{"a": 1}' + b"XX0\r\n\r\n", False, id="no-CRLF-after-a-chunk"),
    pytest.param(b"8\r\n" + b'{"a": 1}' + b"\r\n0\r\n", True, id="last-chunk-then-FIN"),
])
def test_malformed_chunked_bodies_are_400_problems_and_nothing_is_logged_as_a_crash(
        served: tuple[Platform, str, Path], chunks: bytes, close_write: bool) -> None:
    platform, base, log = served
    request_id = f"chunked-{uuid.uuid4().hex[:8]}"
    before = len(crash_lines(log))
    response = exchange(base, chunked(PREDICT, chunks, f"X-Request-ID: {request_id}\r\n".encode()),
                        close_write=close_write)

    status, headers, body = parse(response)
    assert status == 400, response[:300]
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["type"] == "urn:modelplatform:problem:malformed-body", problem
    assert "chunk" in problem["detail"].lower() or "truncated" in problem["detail"].lower()
    assert platform.rows("request_id = :r", r=request_id) == []
    assert crash_lines(log)[before:] == []


def test_a_good_chunked_body_still_works(served: tuple[Platform, str, Path]) -> None:
    _, base, _ = served
    body = b'{"n": 1.5}'
    status, _, answer = parse(exchange(base, chunked(PREDICT, b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))))
    assert status == 200
    assert json.loads(answer)["output"] == {"echo": {"n": 1.5}}


def test_a_body_shorter_than_its_content_length_is_400_even_when_what_arrived_is_valid_json(
        served: tuple[Platform, str, Path]) -> None:
    platform, base, log = served
    request_id = f"short-{uuid.uuid4().hex[:8]}"
    before = len(crash_lines(log))
    request = (f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"X-Request-ID: {request_id}\r\nContent-Length: 100\r\n\r\n").encode() + b'{"a": 1}'
    status, headers, body = parse(exchange(base, request, close_write=True))
    assert status == 400
    assert json.loads(body)["type"] == "urn:modelplatform:problem:malformed-body"
    assert platform.rows("request_id = :r", r=request_id) == []
    assert crash_lines(log)[before:] == []


def _post(base: str, path: str, body: dict, headers: bytes = b"") -> tuple[int, dict]:
    data = json.dumps(body).encode()
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\nConnection: close\r\n").encode() + headers + b"\r\n" + data
    status, _, answer = parse(exchange(base, request))
    return status, json.loads(answer)


def test_a_utf8_routing_key_header_routes_and_is_stored_like_the_same_key_in_the_body(
        served: tuple[Platform, str, Path]) -> None:
    platform, base, _ = served
    weights = {"1.0.0": 50, "1.1.0": 50}
    # the test name is chosen so that the key and its Latin-1 misreading ("ZoÃ«") land on different arms
    assert assign("sticky-split", weights, "Zoë") != assign("sticky-split", weights, "Zoë".encode().decode("latin-1"))
    quote = {"vehicle": "suv", "driver_age": 40}

    by_header = _post(base, "/models/auto_pricing/predict", {**quote, "customer_id": "someone-else"},
                      "X-Routing-Key: Zoë\r\n".encode())
    by_body = _post(base, "/models/auto_pricing/predict", {**quote, "customer_id": "Zoë"})

    assert by_header[0] == by_body[0] == 200
    assert by_header[1]["version"] == by_body[1]["version"] == assign("sticky-split", weights, "Zoë")
    rows = {str(r["id"]): r["routing_key"] for r in platform.rows("model = 'auto_pricing'")}
    assert rows[by_header[1]["inference_id"]] == rows[by_body[1]["inference_id"]] == "Zoë"


def test_a_routing_key_header_that_is_not_utf8_is_400_saying_how_to_send_it(served: tuple[Platform, str, Path]) -> None:
    platform, base, _ = served
    request_id = f"latin1-{uuid.uuid4().hex[:8]}"
    status, problem = _post(base, "/models/auto_pricing/predict", {"vehicle": "suv", "driver_age": 40},
                            b"X-Routing-Key: Zo\xeb\r\nX-Request-ID: " + request_id.encode() + b"\r\n")
    assert status == 400
    assert problem["type"] == "urn:modelplatform:problem:bad-request"
    assert "UTF-8" in problem["detail"] and "sticky_key" in problem["detail"]
    assert platform.rows("request_id = :r", r=request_id) == []
