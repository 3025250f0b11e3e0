"""Durable state: what was received, what each transaction is, and what is owed to handlers."""

from .jobs import DeliveryJob, DeliveryResult, VerificationJob, utcnow
from .store import Locked, Store, TransactionRecord, new_event_id

__all__ = ["DeliveryJob", "DeliveryResult", "Locked", "Store", "TransactionRecord", "VerificationJob", "new_event_id", "utcnow"]
