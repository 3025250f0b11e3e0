"""A store that has already seen a lot: ``rows`` paid Monri callbacks, each with its transaction,
event, booked movement and finished delivery, written in bulk as hookhub itself would have left
them. Then how long the operators' listings take on it.

Usage: ``grow.py URL ROWS [--handler NAME]`` seeds the store at URL (created or upgraded first) and
prints one JSON line: the seeding time and each listing's best of three, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, insert, select

from hookhub.store import Store, schema
from hookhub.store.migrate import upgrade

CHUNK = 20_000


def seed(url: str, rows: int, handler: str = "bench_handler") -> float:
    """Write ``rows`` callbacks' worth of history into the store at ``url``; seconds it took."""
    store = Store(url, timeout=600)
    try:
        upgrade(store)
        started = time.monotonic()
        with store.engine.connect() as conn:
            first = conn.execute(select(func.coalesce(func.max(schema.transactions.c.id), 0))).scalar_one() + 1
        base = datetime(2026, 1, 1, tzinfo=timezone.utc)
        for start in range(0, rows, CHUNK):
            with store.engine.begin() as conn:
                numbers = range(start, min(rows, start + CHUNK))
                at = [base + timedelta(seconds=n) for n in numbers]
                orders = [f"grown-{n}" for n in numbers]
                raw = [{"order_number": o, "amount": 100 + n % 9_900, "currency": "EUR", "status": "approved",
                        "transaction_type": "purchase", "id": 10**8 + n} for n, o in zip(numbers, orders)]
                events = [f"evt_{n:032x}" for n in numbers]
                conn.execute(insert(schema.inbound_calls), [dict(
                    provider="monri", route="callback", method="POST", path="/hooks/monri", query_string="",
                    headers={"Content-Type": "application/json", "Authorization": "WP3-callback [redacted]"},
                    body=json.dumps(r).encode(), peer="127.0.0.1", received_at=t, outcome="event", status_code=200,
                    reference=o, event_id=e) for r, t, o, e in zip(raw, at, orders, events)])
                conn.execute(insert(schema.transactions), [dict(
                    id=first + n, provider="monri", key=o, kind="payment", status="approved",
                    transaction_id=str(r["id"]), order_id=o, amount=r["amount"], currency="EUR", last_event_id=e,
                    created_at=t, updated_at=t, authorized=r["amount"], captured=r["amount"], refunded=0)
                    for n, r, t, o, e in zip(numbers, raw, at, orders, events)])
                conn.execute(insert(schema.events), [dict(
                    id=e, transaction_pk=first + n, type="payment.approved", provider="monri", order_id=o,
                    transaction_id=str(r["id"]), amount=r["amount"], currency="EUR", source="callback",
                    occurred_at=t, received_at=t, raw=r, movement_key="approval",
                    totals={"authorized": r["amount"], "captured": r["amount"], "refunded": 0})
                    for n, r, t, o, e in zip(numbers, raw, at, orders, events)])
                conn.execute(insert(schema.movements), [dict(
                    transaction_pk=first + n, movement_key="approval", kind="payment", provider_id=str(r["id"]),
                    amount=r["amount"], currency="EUR", occurred_at=t, status="booked", event_id=e, recorded_at=t)
                    for n, r, t, e in zip(numbers, raw, at, events)])
                if handler:
                    conn.execute(insert(schema.deliveries), [dict(
                        event_id=e, handler=handler, status="done", attempts=1, next_attempt_at=t, started_at=t,
                        updated_at=t) for t, e in zip(at, events)])
        return time.monotonic() - started
    finally:
        store.close()


def listings(url: str) -> dict[str, float]:
    """Milliseconds, best of three, of what ``hookhub events list``, ``calls list`` and the
    deliveries queue (``deliveries list --status pending``) ask the store."""
    store = Store(url)
    try:
        asks = {"events list": lambda: store.list_events(limit=50),
                "calls list": lambda: store.list_calls(limit=50),
                "deliveries queue": lambda: store.list_deliveries(status="pending", limit=50)}
        timings = {}
        for name, ask in asks.items():
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                ask()
                best = min(best, time.perf_counter() - started)
            timings[name] = best * 1000
        return timings
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("rows", type=int)
    parser.add_argument("--handler", default="bench_handler")
    args = parser.parse_args()
    seconds = seed(args.url, args.rows, args.handler)
    print("GROW-RESULT " + json.dumps({"rows": args.rows, "seed_seconds": seconds, "listings_ms": listings(args.url)}))


if __name__ == "__main__":
    main()
