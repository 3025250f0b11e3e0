"""Slow clients against ``hookhub serve``'s worker (hookhub.workers): requests are read whole in the
worker's loop, so clients that stall hold no thread and get 408 at the read deadline, while the
requests of everyone else, chunked, ``Expect: 100-continue``, kept alive or too large, are served
and recorded as before. Then the loop's framing on its own."""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import time

import pytest
import requests
from gunicorn.config import Config
from gunicorn.http import RequestParser

from hookhub.workers import Framing, Verdict, _Replay
from servers import Gunicorn

READ_TIMEOUT = 2.0
BODY_LIMIT = 4096


@pytest.fixture
def server(tmp_path, moncash, monri, monext):
    gunicorn = Gunicorn(tmp_path, moncash, monri, monext, serve=True, options=("--read-timeout", str(READ_TIMEOUT)),
                        env={"HOOKHUB_MAX_BODY_BYTES": str(BODY_LIMIT)})
    yield gunicorn
    gunicorn.close()


class Wire:
    """A raw connection to the server, reading its answers one at a time."""

    def __init__(self, server: Gunicorn):
        host, port = server.url[len("http://"):].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed by the server; before that: {self.buf!r}")
        self.buf += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head + b"\r\n\r\n"

    def response(self) -> tuple[int, dict[str, str], bytes]:
        lines = self.head().decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:] if line)}
        length = int(headers.get("content-length", 0))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return self.buf
            if not data:
                return self.buf
            self.buf += data

    def close(self) -> None:
        self.sock.close()


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: hookhub", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith(("transfer-encoding", "content-length")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def callback(transaction_id: str) -> bytes:
    return json.dumps({"transactionId": transaction_id}).encode()


def recorded(server: Gunicorn, transaction_id: str) -> dict:
    with server.store() as store:
        [call] = [c for c in store.list_calls(limit=1000) if c["body"] == callback(transaction_id)]
    return call


@pytest.mark.server
def test_stalled_clients_hold_no_thread_and_get_408_at_the_deadline(server, moncash):
    moncash.add_payment("slow-1", "order-slow-1", 10)
    wires = []
    try:
        opened = time.monotonic()
        for _ in range(30):  # the request line and part of the headers, never the rest
            wires.append(Wire(server))
            wires[-1].send(b"POST /hooks/moncash HTTP/1.1\r\nHost: hookhub\r\nContent-Ty")
        for _ in range(30):  # the headers, and 100 of the 1000 bytes of the body
            wires.append(Wire(server))
            wires[-1].send(post("/hooks/moncash", b"", "Content-Length: 1000") + b"{" + b" " * 99)
        trickling = Wire(server)  # a header byte every 0.2 s: it never goes quiet, and still runs out of time
        wires.append(trickling)
        trickling.send(b"POST /hooks/moncash HTTP/1.1\r\nHost: hookhub\r\nX-Slow: ")
        time.sleep(0.3)

        # 61 stalled connections, 8 threads (2 workers, 4 each): everyone else is served at once.
        started = time.monotonic()
        assert requests.get(f"{server.url}/healthz", timeout=3).status_code == 200
        called = requests.post(f"{server.url}/hooks/moncash", json={"transactionId": "slow-1"}, timeout=3)
        assert called.status_code == 200
        assert time.monotonic() - started < 3
        for wire in wires:
            wire.sock.setblocking(False)
            with pytest.raises(BlockingIOError):  # still open, still waited for
                wire.sock.recv(1)
            wire.sock.setblocking(True)

        while not select.select([trickling.sock], [], [], 0.2)[0]:
            trickling.send(b"x")
            assert time.monotonic() - opened < READ_TIMEOUT + 3, "the trickling client was never cut off"
        for wire in wires:
            assert wire.rest().startswith(b"HTTP/1.1 408 "), wire.buf
        assert time.monotonic() - opened >= READ_TIMEOUT - 0.1
    finally:
        for wire in wires:
            wire.close()
    [event] = server.wait_for_deliveries(1)
    assert event["transaction_id"] == "slow-1"


@pytest.mark.server
def test_chunked_and_expect_100_continue_posts_are_served_and_recorded(server, moncash):
    for tid in ("chunked-1", "expect-1", "curl-1"):
        moncash.add_payment(tid, f"order-{tid}", 10)

    chunked = Wire(server)
    chunked.send(post("/hooks/moncash", b"", "Transfer-Encoding: chunked"))
    body = callback("chunked-1")
    for piece in (body[:5], body[5:17], body[17:]):  # each chunk on its own, the loop reading between
        time.sleep(0.1)
        chunked.send(b"%x;note=1\r\n%s\r\n" % (len(piece), piece))
    chunked.send(b"0\r\nX-Checksum: none\r\n\r\n")
    assert chunked.response()[0] == 200
    chunked.close()

    expecting = Wire(server)
    expecting.send(post("/hooks/moncash", b"", "Expect: 100-continue", "Connection: close",
                        f"Content-Length: {len(callback('expect-1'))}"))
    assert expecting.head() == b"HTTP/1.1 100 Continue\r\n\r\n"  # asked for before the body is sent
    expecting.send(callback("expect-1"))
    status, headers, _ = expecting.response()
    assert (status, headers["connection"]) == (200, "close")
    assert expecting.rest() == b""  # no second 100 Continue from gunicorn
    expecting.close()

    if shutil.which("curl"):
        done = subprocess.run(["curl", "-sS", "-v", "-o", "/dev/null", "-w", "%{http_code}",
                               "-H", "Expect: 100-continue", "-H", "Content-Type: application/json",
                               "--data-binary", callback("curl-1").decode(), f"{server.url}/hooks/moncash"],
                              capture_output=True, text=True, timeout=30)
        assert done.stdout == "200", done.stderr
        assert done.stderr.count("< HTTP/1.1 100 Continue") == 1, done.stderr
    else:
        requests.post(f"{server.url}/hooks/moncash", data=callback("curl-1"), timeout=5,
                      headers={"Expect": "100-continue", "Content-Type": "application/json"})

    delivered = server.wait_for_deliveries(3)
    assert sorted(e["transaction_id"] for e in delivered) == ["chunked-1", "curl-1", "expect-1"]
    for tid in ("chunked-1", "expect-1"):
        call = recorded(server, tid)
        assert (call["outcome"], call["status_code"]) == ("event", 200)


@pytest.mark.server
def test_a_kept_alive_connection_serves_request_after_request(server):
    wire = Wire(server)
    wire.send(b"GET /healthz HTTP/1.1\r\nHost: hookhub\r\n\r\n")
    status, headers, body = wire.response()
    assert (status, headers.get("connection", "keep-alive"), json.loads(body)) == (200, "keep-alive", {"status": "ok"})
    wire.send(post("/hooks/nobody", b'{"a": 1}'))
    status, headers, body = wire.response()
    assert (status, json.loads(body)["error"]) == (404, "unknown_provider")
    # Two requests in one write: the second is already read when the first is answered.
    wire.send(b"GET /healthz HTTP/1.1\r\nHost: hookhub\r\n\r\n" + post("/hooks/nobody", b"{}", "Connection: close"))
    assert wire.response()[0] == 200
    status, headers, _ = wire.response()
    assert (status, headers["connection"]) == (404, "close")
    assert wire.rest() == b""
    wire.close()


@pytest.mark.server
def test_bodies_over_the_limit_are_refused_413_and_recorded(server):
    declared = Wire(server)  # refused from its Content-Length: the body is neither asked for nor waited for
    declared.send(post("/hooks/moncash", b"", "Expect: 100-continue", f"Content-Length: {BODY_LIMIT + 1}"))
    status, headers, body = declared.response()
    assert (status, headers["connection"], json.loads(body)["error"]) == (413, "close", "body_too_large")
    declared.close()

    chunked = Wire(server)  # refused after limit + 1 bytes, the rest never read
    data = b'{"transactionId": "big", "pad": "' + b"x" * (2 * BODY_LIMIT) + b'"}'
    pieces = [data[i:i + 1000] for i in range(0, len(data), 1000)]
    chunked.send(post("/hooks/moncash", b"", "Transfer-Encoding: chunked")
                 + b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n")
    status, headers, body = chunked.response()
    assert (status, headers["connection"], json.loads(body)["error"]) == (413, "close", "body_too_large")
    chunked.close()

    with server.store() as store:
        refused = store.list_calls(outcome="body_too_large")
    assert [(c["provider"], c["status_code"], c["body"]) for c in refused] == [("moncash", 413, b"")] * 2


@pytest.mark.server
def test_a_request_stuck_past_the_timeout_gets_its_worker_restarted(tmp_path, moncash, monri, monext):
    # The loop goes on while a thread hangs: it is the worker that stops telling gunicorn it lives.
    server = Gunicorn(tmp_path, moncash, monri, monext, workers=1, options=("--timeout", "2"),
                      env={"HOOKHUB_HTTP_TIMEOUT": "60"}, serve=True)
    try:
        [before] = server.workers()
        moncash.add_payment("stuck-1", "order-stuck-1", 10)
        moncash.delay = 30
        started = time.monotonic()
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{server.url}/hooks/moncash", json={"transactionId": "stuck-1"}, timeout=20)
        assert time.monotonic() - started < 10
        moncash.delay = 0
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert server.workers() != [before]
    finally:
        moncash.delay = 0
        server.close()


# -- the loop's framing, without a server ----------------------------------------------------------


def framing(limit: int | None = 100) -> Framing:
    return Framing(head_limit=1000, line_limit=100, body_limit=limit)


def feed(pieces: list[bytes], limit: int | None = 100) -> tuple[list[str], Framing, bytearray]:
    """The verdict after each piece arrives."""
    frame, buf, verdicts = framing(limit), bytearray(), []
    for piece in pieces:
        buf += piece
        verdicts.append(frame.advance(buf))
    return verdicts, frame, buf


def parsed(data: bytes) -> tuple[str, bytes]:
    """What gunicorn's own parser makes of ``data``: the request's path and body."""
    replay = _Replay()
    replay.load(data)
    request = next(RequestParser(Config(), replay, ("127.0.0.1", 1)))
    return request.path, request.body.read()


def test_a_request_is_complete_when_its_body_is():
    verdicts, frame, buf = feed([b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n", b"\r\nab", b"cde",
                                 b"GET /next HTTP/1.1\r\n\r\n"])
    assert verdicts == [Verdict.MORE, Verdict.MORE, Verdict.COMPLETE, Verdict.COMPLETE]
    assert parsed(bytes(buf[:frame.end])) == ("/a", b"abcde")
    assert buf[frame.end:] == b"GET /next HTTP/1.1\r\n\r\n"  # the next request's, kept for it


def test_a_chunked_request_is_complete_at_its_last_chunk_and_trailers():
    pieces = [b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", b"\r\n2;x=y\r\nde\r\n",
              b"0\r\n", b"T: 1\r\n", b"\r\n"]
    verdicts, frame, buf = feed(pieces)
    assert verdicts == [Verdict.MORE] * 4 + [Verdict.COMPLETE]
    assert parsed(bytes(buf[:frame.end])) == ("/c", b"abcde")


def test_100_continue_is_wanted_only_for_http_1_1():
    assert feed([b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"])[1].wants_continue
    assert not feed([b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"])[1].wants_continue


@pytest.mark.parametrize("head", [
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\n",
    b"POST / HTTP/1.1\r\nExpect: something\r\nContent-Length: 3\r\n\r\n",
    b"POST / HTTP/1.1\nContent-Length: 3\n",  # bare LF: gunicorn refuses it at once, so no waiting for more
    b"\r\n\r\n",
], ids=["two lengths", "length and chunked", "chunked not last", "chunked 1.0", "signed length",
        "space before colon", "unknown expectation", "bare LF", "empty line"])
def test_unclear_framing_is_handed_over_as_it_is_for_gunicorn_to_refuse(head):
    verdicts, frame, buf = feed([head])
    assert verdicts == [Verdict.HEAD_ONLY]


def test_a_head_over_the_limits_is_handed_over_for_gunicorn_to_refuse():
    verdicts, _, _ = feed([b"GET / HTTP/1.1\r\n", b"X: " + b"y" * 1000])
    assert verdicts == [Verdict.MORE, Verdict.HEAD_ONLY]


def test_a_content_length_over_the_limit_is_handed_over_without_its_body():
    verdicts, frame, buf = feed([b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\nab"])
    assert verdicts == [Verdict.TOO_LARGE] and buf[:frame.end].endswith(b"\r\n\r\n")


def test_a_chunked_body_over_the_limit_is_cut_one_byte_past_it():
    chunk = b"40\r\n" + b"z" * 64 + b"\r\n"
    verdicts, frame, buf = feed([b"POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", chunk, chunk])
    assert verdicts == [Verdict.MORE, Verdict.MORE, Verdict.CUT]
    assert parsed(frame.cut(buf)) == ("/big", b"z" * 101)
