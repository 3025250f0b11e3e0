"""hookhub: a self-hosted hub for payment providers' callbacks and buyers' returns.

Everything a merchant's handler or a provider plugin needs is importable from here; nothing else in
the package is a public API.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from . import errors
from .app import create_app
from .calls import InboundCall, Reply, Trigger
from .errors import (ConfigError, HookhubError, InvalidRequest, InvalidResultToken, InvalidSignature,
                     ProviderAPIError, ProviderAuthError, ProviderError, ProviderNotFound,
                     ProviderUnavailable, StoreUnavailable, ValidationError)
from .events import EVENT_TYPES, Event
from .hookspecs import hookimpl, hookspec
from .http import ApiClient, ApiResponse, basic_auth
from .hub import Hub
from .jsonutil import dumps as json_dumps
from .jsonutil import loads as json_loads
from .money import to_major_units, to_minor_units
from .providers import Memo, Provider, Setting
from .sandbox import PAYMENT_STATUSES, Sandbox, SandboxServer, SimulatedPayment, SimulatedRequest
from .states import TransactionState
from .tokens import read as _read_token

__all__ = [
    "ApiClient", "ApiResponse", "ConfigError", "EVENT_TYPES", "Event", "HookhubError", "InboundCall",
    "InvalidRequest", "InvalidResultToken", "InvalidSignature", "Memo", "PAYMENT_STATUSES", "Provider",
    "ProviderAPIError", "ProviderAuthError", "ProviderError", "ProviderNotFound", "ProviderUnavailable",
    "Reply", "Sandbox", "SandboxServer", "Setting", "SimulatedPayment", "SimulatedRequest",
    "StoreUnavailable", "TransactionState", "Trigger", "ValidationError", "basic_auth", "client",
    "create_app", "errors", "hookimpl", "hookspec", "json_dumps", "json_loads", "read_result",
    "to_major_units", "to_minor_units",
]


def client(name: str, app: Flask | None = None) -> Any:
    """The signed API client of the configured provider ``name`` (``current_app`` unless ``app``)."""
    hub = Hub.of(app or current_app)
    provider = hub.registry.get(name)
    if provider is None:
        status = hub.registry.statuses.get(name)
        why = f"set {', '.join(status.missing)}" if status else "no plugin registers it"
        raise ConfigError(f"provider {name!r} is not configured: {why}")
    return provider.client


def read_result(token: str, app: Flask | None = None, *, secret_key: str | None = None,
                max_age: int | None = None) -> dict[str, Any]:
    """Verify a return's ``result`` token and give its fields: event_id, order_id, provider, status.

    Pass ``secret_key`` (hookhub's ``HOOKHUB_SECRET_KEY``) from a merchant app that is not hookhub;
    otherwise the key and ``HOOKHUB_RESULT_MAX_AGE`` come from ``app`` or ``current_app``.
    Raises ``InvalidResultToken`` if the token is forged, malformed or expired.
    """
    if secret_key is None:
        app = app or current_app
        secret_key = app.config["SECRET_KEY"]
        max_age = max_age or app.config["HOOKHUB_RESULT_MAX_AGE"]
    return _read_token(token, secret_key, max_age or 3600)
