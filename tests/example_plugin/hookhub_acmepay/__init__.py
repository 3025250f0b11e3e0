"""hookhub provider plugin for AcmePay, an imaginary provider: the worked example of
docs/writing_a_provider_plugin.md.

AcmePay's protocol, as this plugin knows it:

- Callbacks: ``POST /hooks/acmepay`` with the JSON body ``{"payment_id": "pay_..."}`` and the header
  ``X-Acme-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the webhook secret>``.
- Returns: ``GET /return/acmepay?payment_id=pay_...``, unsigned.
- The API: ``GET /v1/payments/{id}`` with ``Authorization: Bearer <api_key>`` answers
  ``{"id", "order_ref", "amount" (int, minor units), "currency", "state"}``, ``state`` one of
  ``succeeded``, ``failed`` or ``processing``; ``GET /v1/account`` says whose key it is.

The distribution declares this module under the ``hookhub`` entry point group::

    [project.entry-points.hookhub]
    acmepay = "hookhub_acmepay"
"""

from __future__ import annotations

from hookhub import hookimpl

from .client import AcmePayClient
from .provider import AcmePay

__all__ = ["AcmePay", "AcmePayClient"]


@hookimpl
def hookhub_register_providers(register):
    register(AcmePay)


@hookimpl
def hookhub_register_sandboxes(register):
    from .sandbox import AcmePaySandbox  # only `hookhub sandbox`, `simulate` and tests need the fake

    register(AcmePaySandbox)
