"""Tables of the store. Times are UTC; JSON columns keep Decimals exact."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text, UniqueConstraint, text)
from sqlalchemy.types import TypeDecorator

from .. import jsonutil


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, hands back aware UTC, whatever the database does with time zones."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass UTC-aware ones")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class JSONText(TypeDecorator):
    """JSON as text, written and read through ``hookhub.jsonutil`` so money never meets a float."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else jsonutil.dumps(value, sort_keys=True)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else jsonutil.loads(value)


# A new job's next attempt: due at once by any host's clock, however skewed (a job is due when its
# time is before the database's clock).
DUE_NOW = datetime(1970, 1, 1, tzinfo=timezone.utc)

metadata = MetaData()

# Every inbound call, recorded with its outcome; one that waits on a provider is recorded first.
inbound_calls = Table(
    "inbound_calls", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("route", String(16), nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("query_string", Text, nullable=False),
    Column("headers", JSONText, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("peer", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("reference", String(128)),
    Column("event_id", String(40)),
    # A refused call (a 4xx, or a return naming what the provider does not confirm) keeps only the
    # start of its body and headers; then the whole body's size and SHA-256. Calls stored before
    # this column have it NULL: their status code says.
    Column("refused", Boolean),
    Column("body_size", Integer),
    Column("body_sha256", String(64)),
    # A callback answered before its reconciliation keeps the verified state it carried until it is
    # reconciled (``hookhub.store.accepted``); NULL for every other call.
    Column("accepted_state", JSONText),
    Column("accepted_retry_at", UTCDateTime),  # set when its reconciliation failed: when to try again
    Index("ix_inbound_calls_received_at", "received_at"),
    Index("ix_inbound_calls_accepted", "id", sqlite_where=text("accepted_state IS NOT NULL"),
          postgresql_where=text("accepted_state IS NOT NULL")),
    Index("ix_inbound_calls_provider_reference", "provider", "reference"),
)

# The per-transaction lock on PostgreSQL: one row per (provider, key), inserted if absent and then
# locked (SELECT ... FOR UPDATE) by whoever reconciles that transaction. It exists before the
# transaction has any state, so the first callback and the first return for a payment wait for
# each other too. On SQLite a write transaction holds the whole database, so the table stays empty.
transaction_locks = Table(
    "transaction_locks", metadata,
    Column("provider", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
)

# One row per payment or payout: its current state.
transactions = Table(
    "transactions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("key", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("last_event_id", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # A payment's totals, from its booked movements (kept here so a read needs no sum).
    Column("authorized", BigInteger, nullable=False, server_default="0"),
    Column("captured", BigInteger, nullable=False, server_default="0"),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("provider", "key", name="uq_transactions_provider_key"),
    Index("ix_transactions_provider_order", "provider", "order_id"),
)

events = Table(
    "events", metadata,
    Column("id", String(40), primary_key=True),
    Column("transaction_pk", Integer, ForeignKey("transactions.id"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("raw", JSONText, nullable=False),
    Column("expected", JSONText),
    Column("inbound_call_id", Integer),
    # The movement the event books (``hookhub.ledger.movement_key``), empty for a status event.
    Column("movement_key", String(160), nullable=False, server_default=""),
    Column("totals", JSONText),  # the payment's totals after the event
    Index("ix_events_received_at", "received_at"),
    # The state machine never reaches a status twice, and a movement is booked once, so a second
    # event of one type for one transaction and movement is a double: the database refuses it even
    # if every lock above it failed.
    Index("uq_events_transaction_type_movement", "transaction_pk", "type", "movement_key", unique=True),
)

# A payment's ledger: each money movement the provider reported, once, booked (with its event) or
# held until it fits what is booked (a refund seen before its payment's approval).
movements = Table(
    "movements", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_pk", Integer, ForeignKey("transactions.id"), nullable=False),
    Column("movement_key", String(160), nullable=False),
    Column("kind", String(16), nullable=False),  # authorization, payment, capture, refund, void
    Column("provider_id", String(128)),  # the provider's id of it
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("occurred_at", UTCDateTime),
    Column("status", String(8), nullable=False),  # booked, held
    Column("note", Text),  # why it is held
    Column("event_id", String(40)),
    Column("mismatch", Integer, nullable=False, server_default="0"),  # an approval booked as payment.mismatch
    Column("recorded_at", UTCDateTime, nullable=False),
    UniqueConstraint("transaction_pk", "movement_key", name="uq_movements_transaction_key"),
)

# One row per (event, handler): each handler's delivery lives and fails on its own.
deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), ForeignKey("events.id"), nullable=False),
    Column("handler", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # pending, done, dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(32)),  # who holds the lease: only they may record the result
    Column("claimed_by", String(32)),  # the process that holds it (``workers.owner``)
    Column("started_at", UTCDateTime),  # when its last attempt started; an attempt counts from here
    Column("last_error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", "handler", name="uq_deliveries_event_handler"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
)

# Checks with a provider that hookhub makes on its own, in the background, of two kinds:
# - ``recheck``: a call's verification the provider could not answer yet (an outage, or a state
#   still pending); ``reference`` is the provider's reference the call named. Deleted once done.
# - ``payment`` / ``payout``: a watch on what a shop created through hookhub; ``reference`` is the
#   order id (a payout's reference), the provider's own id is in ``context``. Kept once it ends.
verifications = Table(
    "verifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("kind", String(16), nullable=False, server_default="recheck"),
    Column("reference", String(128), nullable=False),
    Column("context", JSONText, nullable=False),
    Column("inbound_call_id", Integer),
    Column("order_id", String(128)),
    Column("amount", BigInteger),
    Column("currency", String(3)),
    Column("deadline", UTCDateTime),  # watches: when an unpaid payment is expired (payouts: given up)
    Column("checked_at", UTCDateTime),  # when the provider was last asked
    Column("last_answer", Text),  # what it last said, for operators
    Column("status", String(16), nullable=False),  # pending, gave_up; watches also settled, expired
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(32)),
    Column("claimed_by", String(32)),  # the process that holds it (``workers.owner``)
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("provider_reference", String(128)),  # watches: the provider's own id of what it created
    Column("return_nonce", String(64)),  # payment watches: SHA-256 of the checkout's return nonce
    Column("nonce_used_at", UTCDateTime),  # when a return first echoed it
    UniqueConstraint("provider", "kind", "reference", name="uq_verifications_provider_kind_reference"),
    Index("ix_verifications_due", "status", "next_attempt_at"),
    Index("ix_verifications_provider_reference", "provider", "provider_reference"),
    Index("ix_verifications_return_nonce", "return_nonce"),
)

# What provider plugins remember between calls (see ``hookhub.providers.Memo``).
provider_memos = Table(
    "provider_memos", metadata,
    Column("provider", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("value", JSONText, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("provider", "key", name="uq_provider_memos_provider_key"),
)

# Every process that claims background work, while it lives: its heartbeat, renewed every few
# seconds by the database's clock. A lease whose process's heartbeat stopped is orphaned, and any
# process may take the work at once (``hookhub.heartbeat``).
workers = Table(
    "workers", metadata,
    Column("owner", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("node", String(128), nullable=False),  # the host's boot and pid namespace: where ``pid`` means something
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("beat_at", UTCDateTime, nullable=False),
)
