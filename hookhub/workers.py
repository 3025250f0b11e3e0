"""A gunicorn worker that no slow client can hold: ``hookhub.workers.BufferingWorker``.

gunicorn's sync worker reads a request with blocking reads, and its gthread worker hands a
connection to a pool thread as soon as it is readable, the thread then reading the headers and the
body with blocking reads: a few clients that send slowly, or stop half way, take every thread and
``/healthz`` waits behind them. This worker reads each request whole in its event loop, with
non-blocking reads and a deadline, and hands a thread only a complete request, which gunicorn's own
parser then reads from memory. So no thread ever waits on a client.

The loop only finds where a request ends; whether it is valid stays for gunicorn's parser and the
app to say, as under gunicorn's own workers. Where the framing is unclear (two Content-Lengths, an
unknown transfer coding), the loop hands over the head alone and the connection is closed after the
answer, which for such a request is gunicorn's 400.

Bodies are buffered up to the app's limit (Flask's ``MAX_CONTENT_LENGTH``, that is
``HOOKHUB_MAX_BODY_BYTES``) so that the app still refuses and records larger ones itself: a
Content-Length over the limit is handed over without its body (the app answers 413 from the header
alone), and a chunked body is handed over cut after one byte more than the limit.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import re
import selectors
import socket
import threading
import time
from functools import partial
from typing import Any

import gunicorn
from gunicorn import http
from gunicorn.workers import gthread

from .serving import DEFAULT_READ_TIMEOUT, READ_TIMEOUT_VARIABLE

if not hasattr(gthread.ThreadWorker, "wait_for_and_dispatch_events"):  # the loop this worker builds on
    raise ImportError(f"hookhub.workers is built on gunicorn 27's gthread worker, not {gunicorn.__version__}'s")

# The body limit when the app does not say one (not a Flask app): larger bodies get 413 here.
DEFAULT_BODY_LIMIT = 1024 * 1024

# One read per readiness event: a fast client cannot overshoot the caps by much, and every
# connection gets its turn.
RECV_SIZE = 64 * 1024

# How long, and for how many bytes, a connection closed after its answer reads what the client
# still sends (gunicorn's figures), so that the close does not reset the answer away.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TOO_LARGE = b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

_BARE_LF = re.compile(rb"(?<!\r)\n")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
_HEX = re.compile(rb"[0-9a-fA-F]+")


class Verdict:
    """What the loop does with a request it has read (part of)."""

    MORE = "more"  # wait for more bytes
    COMPLETE = "complete"  # hand over the request, ``end`` bytes long
    HEAD_ONLY = "head only"  # hand over what is buffered, and close after the answer
    TOO_LARGE = "too large"  # a Content-Length over the limit: hand over the head alone
    CUT = "cut"  # a chunked body over the limit: hand over the head and the body cut after limit + 1


class Framing:
    """Where one request ends, found as its bytes arrive: gunicorn's framing rules, without judging
    anything else. ``advance(buf)`` is called with the bytes so far (the request starts at 0)."""

    def __init__(self, *, head_limit: int, line_limit: int, body_limit: int | None):
        self.head_limit = head_limit
        self.line_limit = line_limit  # a chunk-size line, as gunicorn bounds it
        self.body_limit = body_limit
        self.state = "head"
        self.pos = 0  # how far ``buf`` has been read
        self.end = 0  # where the request ends, once known
        self.head_end = 0
        self.wants_continue = False
        self.length = 0
        self.chunk_left = 0
        self.spans: list[tuple[int, int]] = []  # where the chunked body's data lies in ``buf``
        self.body_size = 0

    def advance(self, buf: bytearray) -> str:
        if self.state == "head":
            verdict = self._head(buf)
            if verdict is not None:
                return verdict
        if self.state == "length":
            if len(buf) >= self.head_end + self.length:
                self.end = self.head_end + self.length
                return Verdict.COMPLETE
            return Verdict.MORE
        return self._chunks(buf)

    def body_started(self, buf: bytearray) -> bool:
        return len(buf) > self.head_end

    def _head(self, buf: bytearray) -> str | None:
        # RFC 9112 section 2.2: one empty line may come before the request line.
        start = 2 if buf[:2] == b"\r\n" else 0
        if buf[start:start + 2] == b"\r\n":
            self.end = len(buf)
            return Verdict.HEAD_ONLY  # an empty request line: gunicorn's 400
        scan = max(start, self.pos - 3)
        index = buf.find(b"\r\n\r\n", scan)
        if index < 0:
            self.pos = len(buf)
            # A bare LF would never end the head as gunicorn reads it, which refuses it at once.
            if _BARE_LF.search(buf, max(start, scan)) or len(buf) - start > self.head_limit:
                self.end = len(buf)
                return Verdict.HEAD_ONLY  # gunicorn's parser answers 400 or 431
            return Verdict.MORE
        if _BARE_LF.search(buf, start, index):
            self.end = len(buf)
            return Verdict.HEAD_ONLY
        self.head_end = self.pos = index + 4
        return self._framing(bytes(buf[start:index]))

    def _framing(self, head: bytes) -> str | None:
        """The body's framing from the head, as gunicorn's ``set_body_reader`` reads it."""
        line, *lines = head.split(b"\r\n")
        version = _VERSION.fullmatch(line.rsplit(b" ", 1)[-1])
        if version is None:
            return self._head_only()
        http11 = (int(version[1]), int(version[2])) >= (1, 1)
        fields: list[tuple[bytes, bytes]] = []
        for field in lines:
            if field[:1] in (b" ", b"\t") and fields:  # obsolete folding, where gunicorn permits it
                name, value = fields[-1]
                fields[-1] = (name, value + b" " + field.strip(b" \t"))
                continue
            name, colon, value = field.partition(b":")
            if not colon:
                return self._head_only()
            key = name.rstrip(b" \t").lower()
            if key != name.lower() and key in (b"content-length", b"transfer-encoding", b"expect"):
                return self._head_only()  # spaces before the colon: read one way here, another there
            fields.append((key, value.strip(b" \t")))
        lengths = [value for name, value in fields if name == b"content-length"]
        codings = [coding.strip(b" \t").lower() for name, value in fields if name == b"transfer-encoding"
                   for coding in value.split(b",")]
        expectations = [value.lower() for name, value in fields if name == b"expect"]
        if any(value != b"100-continue" for value in expectations):
            return self._head_only()  # gunicorn answers 417 without the body
        self.wants_continue = bool(expectations) and http11
        if codings:
            if lengths or not http11 or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
                return self._head_only()  # gunicorn's 400
            self.state = "size"
            return None
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            return self._head_only()
        self.length = int(lengths[0]) if lengths else 0
        if self.body_limit is not None and self.length > self.body_limit:
            self.end = self.head_end
            return Verdict.TOO_LARGE
        self.state = "length"
        return None

    def _head_only(self) -> str:
        self.end = self.head_end
        return Verdict.HEAD_ONLY

    def _chunks(self, buf: bytearray) -> str:
        while True:
            if self.state == "size":
                eol = buf.find(b"\r\n", self.pos)
                if eol < 0:
                    if len(buf) - self.pos > self.line_limit:
                        return self._malformed(buf)
                    return Verdict.MORE
                size = buf[self.pos:eol].split(b";", 1)[0].rstrip(b" \t")
                if not _HEX.fullmatch(size):
                    return self._malformed(buf)
                self.pos = eol + 2
                self.chunk_left = int(size, 16)
                self.state = "data" if self.chunk_left else "trailers"
            elif self.state == "data":
                take = min(self.chunk_left, len(buf) - self.pos)
                if take:
                    self.spans.append((self.pos, take))
                    self.pos += take
                    self.chunk_left -= take
                    self.body_size += take
                if self.body_limit is not None and self.body_size > self.body_limit:
                    return Verdict.CUT
                if self.chunk_left:
                    return Verdict.MORE
                self.state = "data end"
            elif self.state == "data end":
                if len(buf) - self.pos < 2:
                    return Verdict.MORE
                if buf[self.pos:self.pos + 2] != b"\r\n":
                    return self._malformed(buf)
                self.pos += 2
                self.state = "size"
            else:  # trailers: an empty line, or header lines up to an empty line
                if len(buf) - self.pos < 2:
                    return Verdict.MORE
                if buf[self.pos:self.pos + 2] == b"\r\n":
                    self.end = self.pos + 2
                    return Verdict.COMPLETE
                index = buf.find(b"\r\n\r\n", self.pos)
                if index < 0:
                    if len(buf) - self.pos > self.head_limit:
                        return self._malformed(buf)
                    return Verdict.MORE
                self.end = index + 4
                return Verdict.COMPLETE

    def _malformed(self, buf: bytearray) -> str:
        # gunicorn's chunk reader refuses it when the app reads the body, as it would have.
        self.end = len(buf)
        return Verdict.HEAD_ONLY

    def cut(self, buf: bytearray) -> bytes:
        """The request with its chunked body cut one byte past the limit: enough for the app to
        know it is too large, without reading the rest."""
        body = b"".join(bytes(buf[start:start + size]) for start, size in self.spans)
        body = body[:(self.body_limit or 0) + 1]
        return bytes(buf[:self.head_end]) + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


class _Replay:
    """What gunicorn's parser reads instead of the socket: one buffered request, then the end."""

    def __init__(self) -> None:
        self._data = b""
        self._pos = 0

    def load(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def recv(self, size: int) -> bytes:
        chunk = self._data[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk


class Connection(gthread.TConn):
    """A client connection, with what the loop knows of the request it is reading."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.buf = bytearray()  # bytes read and not handed over: the request being read, and any after it
        self.framing: Framing | None = None
        self.replay = _Replay()
        self.state = "new"  # "reading", "handed over", "lingering", "closed"
        self.ticket = 0  # tells this state's deadline from earlier ones still in the heap
        self.drained = 0
        self.continued = False
        self.close_after = False


class BufferingWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker, with every request read whole in the event loop first.

    The pool's threads (``--threads``) only run the app. The connections being read count against
    ``--worker-connections``, like every open connection.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The loop reads plain HTTP/1 only: TLS, HTTP/2 and the PROXY protocol are left to gthread's
        # threads, which a slow client can hold again (a buffering proxy in front is the answer).
        self.buffering = not (self.cfg.is_ssl or "h2" in getattr(self.cfg, "http_protocols", ())
                              or getattr(self.cfg, "protocol", "http") != "http"
                              or getattr(self.cfg, "proxy_protocol", "off") not in ("off", False, None))
        # From the connection (on a kept-alive one, from the next request's first byte) to the body's last.
        self.read_timeout = float(os.environ.get(READ_TIMEOUT_VARIABLE) or DEFAULT_READ_TIMEOUT)
        self.body_limit: int | None = None
        self.app_limit = False
        self.deadlines: list[tuple[float, int, Connection]] = []
        self.tickets = itertools.count(1)
        self.running: dict[int, float] = {}  # thread -> when the request it runs started
        self.stuck = False

    def run(self) -> None:
        if not self.buffering:
            self.log.warning("hookhub's worker reads requests in its threads with TLS, HTTP/2 or the "
                             "PROXY protocol: slow clients can hold them; put a buffering proxy in front")
        limit = getattr(self.wsgi, "config", {}).get("MAX_CONTENT_LENGTH")
        self.app_limit = isinstance(limit, int)
        self.body_limit = limit if self.app_limit else DEFAULT_BODY_LIMIT
        super().run()

    # -- the loop: accepting, reading, handing over -------------------------------------------------

    def accept(self, listener: Any) -> None:
        if not self.buffering:
            return super().accept(listener)
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = Connection(self.cfg, sock, client, listener.getsockname())  # non-blocking from here
        self._start_reading(conn)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request has begun: read it in the loop too."""
        if not self.buffering:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start_reading(conn)
        self._read(conn)

    def _start_reading(self, conn: Connection) -> None:
        cfg = self.cfg
        line_limit = cfg.limit_request_line if 0 < cfg.limit_request_line < 8190 else 8190
        field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
        fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768
        # gunicorn's own bounds on a request line and a header section, and a little more, so that
        # its parser, not this loop, is the one that refuses a head over them.
        conn.framing = Framing(head_limit=line_limit + fields * (field_size + 2) + 8, line_limit=field_size,
                               body_limit=self.body_limit)
        conn.continued = conn.close_after = False
        conn.sock.setblocking(False)
        self._enter(conn, "reading", self.read_timeout, self._read)

    def _enter(self, conn: Connection, state: str, seconds: float, on_readable: Any) -> None:
        self._leave(conn, state)
        conn.ticket = next(self.tickets)
        heapq.heappush(self.deadlines, (time.monotonic() + seconds, conn.ticket, conn))
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(on_readable, conn))

    def _leave(self, conn: Connection, state: str) -> None:
        conn.state = state
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _read(self, conn: Connection, _sock: Any = None) -> None:
        ended = False
        try:
            data = conn.sock.recv(RECV_SIZE)
            ended = not data
            conn.buf += data
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            ended = True
        assert conn.framing is not None
        framing = conn.framing
        verdict = framing.advance(conn.buf)
        if verdict == Verdict.MORE:
            if ended:  # the client left half way: there is nobody to answer
                self._close(conn)
            elif framing.wants_continue and not conn.continued and framing.state != "head" \
                    and not framing.body_started(conn.buf):
                conn.continued = True  # RFC 9110 section 10.1.1: the client waits for this to send the body
                self._send(conn, CONTINUE)
            return
        if verdict in (Verdict.TOO_LARGE, Verdict.CUT) and not self.app_limit:
            self._send(conn, TOO_LARGE)
            self._linger(conn)
            return
        request = framing.cut(conn.buf) if verdict == Verdict.CUT else bytes(conn.buf[:framing.end])
        # The rest is the next request's, if this one leaves the connection open.
        close_after = verdict != Verdict.COMPLETE
        del conn.buf[:len(conn.buf) if close_after else framing.end]
        self._hand_over(conn, request, close_after)

    def _hand_over(self, conn: Connection, request: bytes, close_after: bool) -> None:
        self._leave(conn, "handed over")
        conn.replay.load(request)
        conn.close_after = close_after
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.replay, conn.client)
        conn.data_ready = True  # gthread's handle() must not wait for the socket
        self.enqueue_req(conn)

    def _send(self, conn: Connection, data: bytes) -> None:
        """A short answer from the loop: it fits an empty send buffer, or the client is not reading it."""
        try:
            conn.sock.send(data)
        except OSError:
            pass

    def _linger(self, conn: Connection) -> None:
        """Close after the answer without losing it (RFC 9112 section 9.6): send FIN, and read what
        the client still sends until it closes too, for a short while, in the loop. gthread's own
        graceful close waits for the client in the loop's thread."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.buf.clear()
        conn.drained = 0
        conn.sock.setblocking(False)
        self._enter(conn, "lingering", LINGER_SECONDS, self._drain)

    def _drain(self, conn: Connection, _sock: Any = None) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained > LINGER_MAX_BYTES:
            self._close(conn)

    def _close(self, conn: Connection) -> None:
        self._leave(conn, "closed")
        self.nr_conns -= 1
        conn.close()

    # -- the threads ---------------------------------------------------------------------------------

    def handle_request(self, req: Any, conn: Any) -> bool:
        if isinstance(conn, Connection):
            # The loop has answered 100-continue, or meant not to (the body over the limit): gunicorn
            # must not send one of its own after it.
            req._expected_100_continue = False
            if conn.close_after:
                req.force_close()  # the rest of the request, if any, was never read
            # Nor may a client that does not read its answer hold the thread writing it.
            conn.sock.settimeout(self.read_timeout)
        thread = threading.get_ident()
        self.running[thread] = time.monotonic()
        try:
            return super().handle_request(req, conn)
        finally:
            del self.running[thread]

    def notify(self) -> None:
        """Tell the arbiter this worker lives, unless a request has run longer than ``--timeout``: then
        the arbiter restarts the worker, as it does a sync worker stuck in a request. (gthread's loop
        would go on telling it while a thread hangs on, say, a database that never answers.)"""
        started = min(list(self.running.values()), default=None)
        if started is not None and 0 < self.cfg.timeout < time.monotonic() - started:
            if not self.stuck:
                self.stuck = True
                self.log.error("a request has run for more than %s s: letting gunicorn restart this worker",
                               self.cfg.timeout)
            return
        super().notify()

    def finish_request(self, conn: Any, fs: Any) -> None:
        if not isinstance(conn, Connection):
            return super().finish_request(conn, fs)
        try:
            keep_alive = not fs.cancelled() and fs.result()
        except Exception:
            keep_alive = False
        if not keep_alive:
            self._linger(conn)
            return
        super().finish_request(conn, fs)
        if conn.buf and conn in self.keepalived_conns:
            # A pipelined request already read: the socket will not tell the poller about it.
            self.on_client_socket_readable(conn, conn.sock)

    # -- deadlines ---------------------------------------------------------------------------------

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self.deadlines:
            timeout = max(0.0, min(timeout, self.deadlines[0][0] - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            _, ticket, conn = heapq.heappop(self.deadlines)
            if conn.ticket != ticket:
                continue  # a deadline of a state the connection has left
            if conn.state == "reading":
                self.log.debug("%s took more than %s s to send a request", conn.client, self.read_timeout)
                if conn.buf:
                    self._send(conn, TIMED_OUT)
                    self._linger(conn)
                else:
                    self._close(conn)
            elif conn.state == "lingering":
                self._close(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:  # the worker is stopping: requests still arriving will not be served
            for _, ticket, conn in self.deadlines:
                if conn.ticket == ticket and conn.state in ("reading", "lingering"):
                    self._close(conn)
            self.deadlines.clear()
