"""Durable state: what was received, what each transaction is, and what is owed to handlers."""

from .store import DeliveryJob, Locked, Store, TransactionRecord, VerificationJob, new_event_id, utcnow

__all__ = ["DeliveryJob", "Locked", "Store", "TransactionRecord", "VerificationJob", "new_event_id", "utcnow"]
