"""Every error hookhub raises on purpose, in one small tree.

Inbound errors (``InvalidRequest`` and below) carry the HTTP status the caller gets and a short
machine-readable ``code``. Outbound errors (``ProviderError`` and below) carry what the provider said,
so an operator can tell a refused request from an outage.
"""

from __future__ import annotations


class HookhubError(Exception):
    """Base class of every error hookhub raises on purpose."""


class ConfigError(HookhubError):
    """The configuration cannot work; raised at startup, naming what to fix."""


class SchemaError(ConfigError):
    """The database is not at the schema this hookhub needs; the message names the command that fixes it."""


class StoreUnavailable(HookhubError):
    """The store cannot be reached or is locked past its timeout; callers answer 503."""


# -- inbound ---------------------------------------------------------------------------------------


class InvalidRequest(HookhubError):
    """An inbound call that hookhub refuses: the caller gets ``status`` with a JSON error.

    Provider plugins raise this (or a subclass) from ``read_callback``/``read_return`` for anything
    malformed. The call stays recorded; no event is created.
    """

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidSignature(InvalidRequest):
    """The call's signature is missing or wrong (401)."""

    status = 401
    code = "invalid_signature"


class InvalidResultToken(HookhubError):
    """A ``result`` token that is forged, malformed or expired."""


# -- outbound --------------------------------------------------------------------------------------


class ProviderError(HookhubError):
    """An outgoing call to a provider's API did not give a usable answer.

    ``status`` is the HTTP status when there was one; ``message`` is the provider's own message.
    """

    def __init__(self, provider: str, message: str, *, status: int | None = None, code: str | None = None,
                 payload: object = None):
        super().__init__(f"{provider}: {message}" + (f" (HTTP {status})" if status else ""))
        self.provider = provider
        self.message = message
        self.status = status
        self.code = code
        self.payload = payload


class ProviderUnavailable(ProviderError):
    """Transport failure, timeout, 5xx, 429 or an unreadable answer: worth trying again later."""


class ProviderAPIError(ProviderError):
    """The provider answered and refused the request (a 4xx or an error body)."""


class ProviderAuthError(ProviderAPIError):
    """The provider refused hookhub's credentials; check the provider's settings."""


class ProviderNotFound(ProviderAPIError):
    """The provider does not know the transaction (or other resource) asked for."""


class ValidationError(HookhubError, ValueError):
    """A client call was refused before sending: ``field`` names the offending argument."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
