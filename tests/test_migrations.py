"""The store's schema over time: created on first start, upgraded by ``hookhub db upgrade`` with the
data in it kept and still working, and never run by a hookhub that does not know it."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, func, select, text

from conftest import drain, hub_of
from hookhub import hookimpl, hub
from hookhub.errors import SchemaError
from hookhub.store import Store, migrate, schema

DATABASES = ("sqlite", "postgresql")
ROOT = Path(__file__).resolve().parent.parent
# A store written by hookhub 0.1, before migrations: three MonCash payments (delivered, dead-lettered,
# pending with a re-check due), a duplicate callback and a malformed one.
LEGACY_DUMP = Path(__file__).parent / "data" / "hookhub-0.1.sqlite.sql"


class Shop:
    """The merchant handler the legacy store's deliveries were made for."""

    def __init__(self):
        self.events = []

    @hookimpl
    def hookhub_handle_event(self, event):
        self.events.append(event)


@pytest.fixture
def store(url):
    store = Store(url)
    yield store
    store.close()


def legacy_rows() -> dict[str, list[dict]]:
    """The legacy dump's rows, table by table, read back through SQLite."""
    return dump_rows(LEGACY_DUMP)


def dump_rows(dump: Path) -> dict[str, list[dict]]:
    """A dump's rows, table by table, read back through SQLite."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        conn.connection.driver_connection.executescript(dump.read_text())
        tables = MetaData()
        tables.reflect(conn)
        rows = {name: [r._asdict() for r in conn.execute(select(table))] for name, table in tables.tables.items()}
    engine.dispose()
    return rows


@pytest.fixture
def legacy(url, store):
    """The database as hookhub 0.1 left it: its tables, its data, and no migration history."""
    # Elsewhere than SQLite, the same tables (revision 0001 is exactly what 0.1 created) holding the same rows.
    restore_dump(store, LEGACY_DUMP, migrate.BASELINE, unversioned=True,
                 tables=("transactions", "events", "deliveries", "verifications", "inbound_calls", "provider_memos"))


def restore_dump(store, dump: Path, revision: str, *, tables: tuple[str, ...], unversioned: bool = False) -> None:
    """The database as a SQLite ``dump`` of revision ``revision`` holds it, on the store's own database."""
    if store.dialect == "sqlite":
        with sqlite3.connect(store.engine.url.database) as conn:
            conn.executescript(dump.read_text())
        return
    migrate.upgrade(store, revision)
    reflected = MetaData()
    with store.engine.begin() as conn:
        if unversioned:
            conn.execute(text(f"DROP TABLE {migrate.VERSION_TABLE}"))
        reflected.reflect(conn)
        rows = dump_rows(dump)
        for name in tables:
            if rows[name]:
                conn.execute(reflected.tables[name].insert(), rows[name])
            if "id" in reflected.tables[name].c and name != "events" and rows[name]:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))


def run(app, *args):
    return app.test_cli_runner().invoke(args=["hookhub", *args])


def assert_schema_is_what_the_code_declares(store):
    assert migrate.status(store).up_to_date
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, schema.metadata) == []


def test_an_empty_database_gets_exactly_the_schema_the_code_declares(make_app, store, url):
    app = make_app({"HOOKHUB_DATABASE_URL": url})  # first start: created, nobody asked to
    assert_schema_is_what_the_code_declares(store)
    assert app.test_client().get("/healthz").status_code == 200


def test_a_legacy_database_is_upgraded_by_the_operator_and_keeps_working(make_app, legacy, store, url, moncash,
                                                                         caplog):
    # A server never changes a schema that holds data: it starts, says why it cannot serve, and
    # answers 503 (never a crash, which would stop every worker of the host).
    shop = Shop()
    app = make_app({"HOOKHUB_DATABASE_URL": url}, plugins=[shop])
    client = app.test_client()
    assert client.get("/healthz").status_code == 503
    assert client.post("/hooks/moncash", json={"transactionId": "legacy-paid"}).status_code == 503
    assert re.search(r"not ready.*before migrations \(revision 0001\).*hookhub db upgrade", caplog.text)

    check = run(app, "db", "current", "--check")
    assert check.exit_code == 1 and "before migrations" in check.output
    assert run(app, "events", "list").exit_code == 1  # other commands refuse, naming the fix
    upgraded = run(app, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output.strip() == f"upgraded from 0001 (before migrations) to {migrate.head()}"
    assert run(app, "db", "upgrade").output.startswith("nothing to do")
    assert run(app, "db", "current", "--check").exit_code == 0
    assert_schema_is_what_the_code_declares(store)

    old = legacy_rows()
    stored = hub_of(app).store
    assert [(e.id, e.type, e.amount) for e in stored.list_events()] == [
        (r["id"], r["type"], r["amount"]) for r in old["events"]]
    assert len(stored.list_calls()) == len(old["inbound_calls"]) == 5
    assert [d["status"] for d in stored.list_deliveries()] == ["done", "dead", "done"]
    with store.engine.connect() as conn:  # every stored transaction got its lock row
        assert conn.execute(select(func.count()).select_from(schema.transaction_locks)).scalar_one() == 3

    # The same server notices the upgrade on its own, and the old data takes part in new work: a
    # duplicate stays a duplicate, the pending payment moves on, and the dead letter is replayed
    # with its original event id.
    time.sleep(hub.STORE_RECHECK_SECONDS)
    assert client.get("/healthz").status_code == 200
    moncash.add_payment("legacy-paid", "order-paid", 25)
    moncash.add_payment("legacy-waiting", "order-waiting", 40)
    assert client.post("/hooks/moncash", json={"transactionId": "legacy-paid"}).status_code == 200
    assert client.post("/hooks/moncash", json={"transactionId": "legacy-waiting"}).status_code == 200
    assert run(app, "events", "replay", "--failed").exit_code == 0
    drain(app)
    dead_letter = next(d["event_id"] for d in old["deliveries"] if d["status"] == "dead")
    delivered = {(e.transaction_id, e.type): e.id for e in shop.events}
    assert delivered[("legacy-fails", "payment.approved")] == dead_letter
    assert ("legacy-waiting", "payment.approved") in delivered and len(delivered) == 2
    assert [c["outcome"] for c in stored.list_calls(limit=2)] == ["event", "duplicate"]


def test_a_database_from_a_newer_hookhub_is_never_touched(make_app, store, url, caplog):
    migrate.upgrade(store)
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
    app = make_app({"HOOKHUB_DATABASE_URL": url})
    assert app.test_client().post("/hooks/moncash", json={"transactionId": "1"}).status_code == 503
    assert "revision 9999, which only a newer hookhub knows" in caplog.text
    with pytest.raises(SchemaError, match="only a newer hookhub"):
        hub_of(app).prepare_store()
    refused = run(app, "db", "upgrade")
    assert refused.exit_code == 1 and "only a newer hookhub" in refused.output
    assert migrate.status(store).current == "9999"


def test_servers_starting_at_once_on_an_empty_database_create_it_once(store, url, tmp_path):
    starter = ("import sys; from hookhub import create_app; "
               "app = create_app({'HOOKHUB_DATABASE_URL': sys.argv[1], 'HOOKHUB_SECRET_KEY': 'k' * 32, "
               "'HOOKHUB_SCHEDULER': False}, instance_path=sys.argv[2], environ={}); "
               "sys.exit(0 if app.extensions['hookhub'].store_ready() else 1)")
    starts = [subprocess.Popen([sys.executable, "-c", starter, url, str(tmp_path / f"i{n}")], cwd=ROOT,
                               stderr=subprocess.PIPE) for n in range(6)]
    failures = [p.stderr.read().decode() for p in starts if p.wait(60) != 0]
    for p in starts:
        p.stderr.close()
    assert failures == []
    assert migrate.status(store).up_to_date
    with store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {migrate.VERSION_TABLE}")).scalar_one() == 1


# A store written at revision 0003, before ledgers: Monri order-A paid 10000 and refunded 3000 (booked
# as "refunded" then), order-B authorized 6000, order-C paid and voided, order-D declined.
LEDGERLESS_DUMP = Path(__file__).parent / "data" / "hookhub-0003-ledgerless.sqlite.sql"
LEDGER_KEY = "ledger-test-merchant-key"


@pytest.fixture
def ledgerless(url, store):
    """The database as hookhub left it at revision 0003, with its data."""
    restore_dump(store, LEDGERLESS_DUMP, "0003", tables=(
        "inbound_calls", "transactions", "transaction_locks", "events", "deliveries", "verifications"))


def signed_webhook(client, kind, order, id, amount):
    import hashlib
    import json

    payload = {"id": id, "order_number": order, "amount": amount, "currency": "EUR", "status": "approved",
               "response_code": "0000", "transaction_type": kind, "created_at": "2026-11-30T13:00:00Z"}
    raw = json.dumps({"event": f"transaction:{kind}:approved", "payload": payload}).encode()
    digest = hashlib.sha512(LEDGER_KEY.encode() + raw).hexdigest()
    return client.post("/hooks/monri", data=raw, headers={"Authorization": f"WP3-callback {digest}"})


def test_a_store_from_before_ledgers_becomes_ledgers_keeping_every_event(make_app, ledgerless, store, url):
    shop = Shop()
    app = make_app({"HOOKHUB_DATABASE_URL": url, "HOOKHUB_MONRI_MERCHANT_KEY": LEDGER_KEY}, plugins=[shop],
                   prepare_store=False)
    upgraded = run(app, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output.strip() == f"upgraded from 0003 to {migrate.head()}"
    assert_schema_is_what_the_code_declares(store)
    stored = hub_of(app).store
    old = dump_rows(LEDGERLESS_DUMP)
    assert [(e.id, e.type, e.amount) for e in stored.list_events()] == [
        (r["id"], r["type"], r["amount"]) for r in old["events"]]

    def ledger(order):
        [payment] = stored.payment_ledgers("monri", order)
        return payment["status"], payment["totals"], [(m["kind"], m["amount"], m["status"]) for m in payment["movements"]]

    assert ledger("order-A") == ("approved", {"authorized": 10000, "captured": 10000, "refunded": 3000},
                                 [("payment", 10000, "booked"), ("refund", 3000, "booked")])
    assert ledger("order-B") == ("approved", {"authorized": 6000, "captured": 0, "refunded": 0},
                                 [("authorization", 6000, "booked")])
    assert ledger("order-C")[0] == "canceled" and ledger("order-D") == ("declined", {"authorized": 0, "captured": 0,
                                                                                     "refunded": 0}, [])
    refund_event = next(e for e in stored.list_events() if e.type == "payment.refunded")
    assert refund_event.totals == {"authorized": 10000, "captured": 10000, "refunded": 3000}

    # The old movements take part in new work: a repeat is a duplicate, new parts are one event each.
    client = app.test_client()
    assert signed_webhook(client, "refund", "order-A", 502, 3000).status_code == 200
    assert signed_webhook(client, "refund", "order-A", 503, 2000).status_code == 200
    assert signed_webhook(client, "capture", "order-B", 602, 2500).status_code == 200
    assert signed_webhook(client, "purchase", "order-A", 501, 10000).status_code == 200
    drain(app)
    assert [(e.type, e.amount, e.totals) for e in shop.events] == [
        ("payment.refunded", 2000, {"authorized": 10000, "captured": 10000, "refunded": 5000}),
        ("payment.captured", 2500, {"authorized": 6000, "captured": 2500, "refunded": 0}),
    ]
