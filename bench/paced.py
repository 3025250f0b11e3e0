"""A fixed-rate load: request i is due at start + i/rate, and its latency counts from then.

wrk sends a connection's next request only when the last is answered, so a server that stalls
also stalls the load, and the stall shows up as one slow request instead of the hundreds that
were due meanwhile. Here every request has a scheduled send time: one that waits for a free
connection waits on the clock, and that wait is part of its latency. Connections are opened as
they are needed, up to ``--connections``.

Usage: ``paced.py URL REQUESTS_FILE RATE SECONDS [--connections N]``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


def load_requests(path: str, host: str) -> list[bytes]:
    """The requests of a bench request file (see load.lua), as bytes ready to send."""
    built = []
    with open(path) as lines:
        for line in lines:
            method, target, authorization, body = line.rstrip("\n").split("\t", 3)
            head = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
            if authorization:
                head.append(f"Authorization: {authorization}")
            data = body.encode()
            if data:
                head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
            built.append(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    return built


async def _answer(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    if close:
        raise ConnectionResetError("closed after the answer")
    return status


async def run(url: str, requests: list[bytes], rate: float, seconds: float, connections: int) -> dict:
    parts = urlsplit(url)
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    open_connections = 0

    async def connection() -> None:
        nonlocal errors
        reader = writer = None
        while True:
            item = await queue.get()
            if item is None:
                break
            index, due = item
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.write(requests[index % len(requests)])
                status = await _answer(reader)
                statuses[f"{status // 100}xx"] = statuses.get(f"{status // 100}xx", 0) + 1
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
            latencies.append(time.monotonic() - due)
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(min(4, connections))]
    open_connections = len(workers)
    start = time.monotonic() + 0.05
    for index in range(total):
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if not queue.empty() and open_connections < connections:  # requests wait: one more connection
            workers.append(asyncio.create_task(connection()))
            open_connections += 1
        queue.put_nowait((index, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - start
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else float("nan")

    return {"rate": rate, "sent": total, "seconds": elapsed, "statuses": statuses, "errors": errors,
            "connections": open_connections, "p50_ms": percentile(50), "p90_ms": percentile(90),
            "p99_ms": percentile(99), "max_ms": latencies[-1] * 1000 if latencies else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("requests")
    parser.add_argument("rate", type=float)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    requests = load_requests(args.requests, urlsplit(args.url).netloc)
    print("PACED-RESULT " + json.dumps(asyncio.run(run(args.url, requests, args.rate, args.seconds, args.connections))))


if __name__ == "__main__":
    main()
