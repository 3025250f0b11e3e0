"""The durable receiver a careful merchant writes by hand: ``baseline.py`` plus one row per call,
committed before the 200. What hookhub is measured against.

It checks the WP3-callback digest, parses the JSON (money as Decimal), inserts the order number,
status and amount with ``INSERT ... ON CONFLICT DO NOTHING`` (a repeated callback changes
nothing) and commits before answering, so every answered call survives a crash. No dedupe beyond
the key, no ledger, no event, no hand-off.

``DURABLE_DATABASE`` says where: a SQLite file (the standard library's ``sqlite3``, WAL,
``synchronous=FULL``, one connection per thread) or a ``postgresql://`` URL (psycopg, one
connection per worker thread, each call its own transaction).
"""

import hashlib
import hmac
import json
import os
import sqlite3
import threading
from decimal import Decimal

from flask import Flask, abort, request

app = Flask(__name__)
MERCHANT_KEY = os.environ["HOOKHUB_MONRI_MERCHANT_KEY"].encode()
DATABASE = os.environ["DURABLE_DATABASE"]
SCHEMA = "CREATE TABLE IF NOT EXISTS callbacks (order_number TEXT PRIMARY KEY, status TEXT, amount BIGINT)"
_local = threading.local()


def connection():
    conn = getattr(_local, "conn", None)
    if conn is None:
        if DATABASE.startswith("postgresql"):
            import psycopg

            conn = psycopg.connect(DATABASE.replace("postgresql+psycopg", "postgresql"))
        else:
            conn = sqlite3.connect(DATABASE, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute(SCHEMA)
        conn.commit()
        _local.conn = conn
    return conn


@app.post("/hooks/monri")
def monri_callback():
    body = request.get_data()
    scheme, _, digest = request.headers.get("Authorization", "").partition(" ")
    expected = hashlib.sha512(MERCHANT_KEY + body).hexdigest()
    if scheme != "WP3-callback" or not hmac.compare_digest(expected, digest.strip().lower()):
        abort(401)
    payment = json.loads(body, parse_float=Decimal)
    if not isinstance(payment, dict) or "order_number" not in payment:
        abort(400)
    conn = connection()
    row = (str(payment["order_number"]), str(payment.get("status")), int(payment.get("amount") or 0))
    if isinstance(conn, sqlite3.Connection):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR IGNORE INTO callbacks VALUES (?, ?, ?)", row)
        conn.execute("COMMIT")
    else:
        conn.execute("INSERT INTO callbacks VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", row)
        conn.commit()
    return "", 200
