"""hookhub: a self-hosted hub for payment providers' callbacks and buyers' returns.

Everything a merchant's handler or a provider plugin needs is importable from here; nothing else in
the package is a public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import errors
from .app import create_app
from .calls import InboundCall, Reply, Trigger
from .errors import (ConfigError, HookhubError, InvalidRequest, InvalidResultToken, InvalidSignature,
                     ProviderAPIError, ProviderAuthError, ProviderError, ProviderNotFound,
                     ProviderUnavailable, StoreUnavailable, ValidationError)
from .events import EVENT_TYPES, Event
from .hookspecs import hookimpl, hookspec
from .http import ApiClient, ApiResponse, basic_auth
from .jsonutil import dumps as json_dumps
from .jsonutil import loads as json_loads
from .money import to_major_units, to_minor_units
from .outbound import Checkout, PaymentRequest, Payout, PayoutRequest, Watch
from .providers import Memo, Provider, Setting
from .sandbox import Sandbox, SandboxServer, SimulatedPayment, SimulatedRequest
from .states import MOVEMENT_KINDS, PAYMENT_STATUSES, PAYOUT_STATUSES, Movement, TransactionState
from .tokens import read as _read_token

__all__ = [
    "ApiClient", "ApiResponse", "Checkout", "ConfigError", "EVENT_TYPES", "Event", "HookhubError",
    "InboundCall", "InvalidRequest", "InvalidResultToken", "InvalidSignature", "MOVEMENT_KINDS", "Memo",
    "Movement", "PAYMENT_STATUSES",
    "PAYOUT_STATUSES", "PaymentRequest", "Payout", "PayoutRequest", "Provider", "ProviderAPIError",
    "ProviderAuthError", "ProviderError", "ProviderNotFound", "ProviderUnavailable", "Reply", "Sandbox",
    "SandboxServer", "Setting", "SimulatedPayment", "SimulatedRequest", "StoreUnavailable", "TransactionState",
    "Trigger", "ValidationError", "Watch", "basic_auth", "client", "create_app", "errors", "hookimpl", "hookspec",
    "json_dumps", "json_loads", "read_result", "start_payment", "start_payout", "to_major_units", "to_minor_units",
]


def client(name: str, app: Any = None, *, settings: Mapping[str, Any] | None = None) -> Any:
    """The signed API client of the configured provider ``name``.

    Works in any process: ``app``'s (a hookhub app), else one built from ``settings`` (a mapping of
    ``HOOKHUB_*`` names), else the current hookhub app's, else one built from the environment.
    Outside hookhub's server nothing is started and no handler is imported. What the client
    creates (payments, payouts) is put on record for hookhub's servers to watch. Raises
    ``ConfigError`` when the provider is not configured, naming what it needs.
    """
    from .shop import client as _client

    return _client(name, app, settings=settings)


def start_payment(provider: str, *, order_id: str, amount: int, currency: str, app: Any = None,
                  settings: Mapping[str, Any] | None = None, **provider_fields: Any) -> Checkout:
    """Start a payment of ``amount`` (an int in minor units) for the shop's ``order_id``.

    Returns a ``Checkout``: send the buyer to ``checkout.redirect_url`` (MonCash, Monext), or give
    ``checkout.client_secret`` to the provider's embedded form (Monri Components). The payment is
    put on record before this returns, so hookhub's servers ask the provider about it if no
    callback or return settles it (``payment.expired`` if it is never paid). ``provider_fields``
    are the provider's own (Monri ``order_info``, Monext ``point_of_sale_reference``, ...).

    Raises ``ValidationError`` naming the field for bad input (nothing is sent), ``ConfigError``
    for an unknown or unconfigured provider, and ``ProviderError`` subclasses for the provider's
    refusals and outages. ``app``/``settings`` choose the configuration as ``client`` does.
    """
    from .shop import start_payment as _start_payment

    return _start_payment(provider, order_id=order_id, amount=amount, currency=currency, app=app,
                          settings=settings, **provider_fields)


def start_payout(provider: str, *, reference: str, amount: int, currency: str, app: Any = None,
                 settings: Mapping[str, Any] | None = None, **destination: Any) -> Payout:
    """Pay ``amount`` (minor units) out to ``destination``, under the shop's unique ``reference``.

    Returns a ``Payout`` whose ``status`` is ``succeeded``, ``failed`` or ``pending``. A definite
    refusal (MonCash's 403 "Maximum Account Balance", a 4xx) raises and nothing is watched; a 5xx
    or no answer returns ``pending``, since the provider may have paid: hookhub's servers watch
    it and send ``payout.succeeded`` or ``payout.failed``. Never pay again on a pending payout.
    ``destination``: MonCash ``receiver`` (and ``desc``); Monext ``payer_bank_account`` and
    ``payee_bank_account``.
    """
    from .shop import start_payout as _start_payout

    return _start_payout(provider, reference=reference, amount=amount, currency=currency, app=app,
                         settings=settings, **destination)


def read_result(token: str, app: Any = None, *, secret_key: str | None = None, max_age: int | None = None,
                expected_order_id: str | None = None, expected_nonce: str | None = None) -> dict[str, Any]:
    """Verify a return's ``result`` token and give its fields: event_id, order_id, provider, status,
    amount, currency, transaction_id and nonce (None where the return did not establish one).

    Pass ``secret_key`` (hookhub's ``HOOKHUB_SECRET_KEY``) from a merchant app that is not hookhub;
    otherwise the key and ``HOOKHUB_RESULT_MAX_AGE`` come from ``app`` or ``current_app``. Pass
    ``expected_order_id``, the order in the buyer's own session, so that a genuine token about
    another order is refused, and ``expected_nonce`` (``Checkout.nonce``) where the checkout had
    one. Raises ``InvalidResultToken`` if the token is forged, malformed, expired, or not about
    what was expected.
    """
    if secret_key is None:
        from flask import current_app

        app = app or current_app
        secret_key = app.config["SECRET_KEY"]
        max_age = max_age or app.config["HOOKHUB_RESULT_MAX_AGE"]
    if max_age is None:
        from .config import DEFAULTS

        max_age = DEFAULTS["HOOKHUB_RESULT_MAX_AGE"]
    return _read_token(token, secret_key, max_age, expected_order_id=expected_order_id,
                       expected_nonce=expected_nonce)
