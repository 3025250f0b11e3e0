"""What a shop's own process calls: provider clients, ``start_payment`` and ``start_payout``.

They work in any process: inside hookhub's server, inside the shop's own Flask or Django app, or in
a script. Outside hookhub's server they use a standalone hub (``hookhub.hub.standalone``) built
from the same ``HOOKHUB_*`` settings, which imports no handler and starts no thread.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from .errors import HookhubError, ValidationError
from .hub import Hub, standalone
from .outbound import (NONCE_PARAM, Checkout, PaymentRequest, Payout, PayoutRequest, check_amount, check_currency,
                       check_order_id)


def hub_for(app: Any = None, settings: Mapping[str, Any] | None = None) -> Hub:
    """``app``'s hub; else a standalone one for ``settings``; else the current hookhub app's, or
    the standalone one of this process's environment."""
    if app is not None:
        return Hub.of(app)
    if settings is not None:
        return standalone(settings)
    from flask import current_app, has_app_context

    if has_app_context():
        hub = current_app.extensions.get("hookhub")
        if isinstance(hub, Hub):
            return hub
    return standalone()


def client(name: str, app: Any = None, *, settings: Mapping[str, Any] | None = None) -> Any:
    return hub_for(app, settings).registry.require(name).client


def _public_route(hub: Hub, route: str, provider: str) -> str | None:
    public_url = hub.settings.get("HOOKHUB_PUBLIC_URL")
    return f"{public_url}/{route}/{provider}" if public_url else None


def start_payment(provider: str, *, order_id: str, amount: int, currency: str, app: Any = None,
                  settings: Mapping[str, Any] | None = None, **provider_fields: Any) -> Checkout:
    request = PaymentRequest(
        order_id=check_order_id("order_id", order_id), amount=check_amount("amount", amount),
        currency=check_currency("currency", currency), fields=provider_fields)
    hub = hub_for(app, settings)
    chosen = hub.registry.require(provider)
    return_url, nonce = _public_route(hub, "return", provider), None
    if return_url and chosen.return_url_per_payment and not _names_a_return_url(provider_fields):
        # The buyer comes back through a URL made for this checkout alone; the nonce in it is
        # kept with the payment's watch and echoed by the first return's result token only.
        nonce = secrets.token_urlsafe(18)
        return_url = f"{return_url}?{urlencode({NONCE_PARAM: nonce})}"
    request = dataclasses.replace(request, return_url=return_url, notify_url=_public_route(hub, "hooks", provider))
    with hub.watches.creating(provider, "payment", request.order_id, nonce) as creation:
        checkout = chosen.start_payment(request)
    if not isinstance(checkout, Checkout):
        raise HookhubError(f"provider {provider!r} answered start_payment with {type(checkout).__name__}, "
                           "not a Checkout")
    return dataclasses.replace(checkout, watched=creation.watched, nonce=nonce if creation.watched else None)


def _names_a_return_url(fields: Mapping[str, Any]) -> bool:
    """Whether the shop gave the provider a return URL of its own (``return_url``, ``returnURL``)."""
    return any(name.replace("_", "").lower() == "returnurl" for name in fields)


def start_payout(provider: str, *, reference: str, amount: int, currency: str, app: Any = None,
                 settings: Mapping[str, Any] | None = None, **destination: Any) -> Payout:
    request = PayoutRequest(reference=check_order_id("reference", reference), amount=check_amount("amount", amount),
                            currency=check_currency("currency", currency), destination=destination)
    hub = hub_for(app, settings)
    chosen = hub.registry.require(provider)
    # A reference names one payout for good: a second payout under it could be paid twice, or
    # be hidden behind the first one's end. Asked before anything is sent.
    hub.prepare_store()
    used = hub.store.get_watch(provider, request.reference, "payout")
    if used is not None:
        raise ValidationError("reference", f"is already used by a payout of {used['amount']} {used['currency']} "
                                           f"({used['status']}): give each payout a new reference")
    with hub.watches.creating(provider, "payout", request.reference) as creation:
        payout = chosen.start_payout(request)
    if not isinstance(payout, Payout):
        raise HookhubError(f"provider {provider!r} answered start_payout with {type(payout).__name__}, not a Payout")
    return dataclasses.replace(payout, watched=creation.watched)
