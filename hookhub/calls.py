"""Inbound calls as provider plugins see them, and what plugins hand back.

Nothing here depends on Flask: a plugin reads an ``InboundCall`` (raw bytes, raw query string,
headers) and returns a ``Trigger``; the core turns it into responses.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from . import jsonutil
from .errors import InvalidRequest
from .states import TransactionState

MAX_FIELDS = 200


def _parse_pairs(text: str, what: str) -> dict[str, list[str]]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict",
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"the {what} cannot be read: {exc}", code=f"malformed_{what}") from None
    fields: dict[str, list[str]] = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(value)
    return fields


@dataclasses.dataclass(frozen=True)
class InboundCall:
    """One call from a provider or a buyer's browser, exactly as received.

    ``route`` is ``"callback"`` (``/hooks/<provider>``) or ``"return"`` (``/return/<provider>``).
    ``query_string`` is the raw, still percent-encoded query; ``body`` the raw bytes. ``public_url``
    is ``HOOKHUB_PUBLIC_URL`` without a trailing slash (or None when it is not configured): build
    any URL you need to verify from it, never from the Host header.
    """

    provider: str
    route: str
    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes
    peer: str
    received_at: datetime
    public_url: str | None = None
    id: int | None = None
    replay_of: int | None = None  # set when an operator re-runs a recorded call: its id

    @functools.cached_property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, each name to its list of values; undecodable input is ``InvalidRequest``."""
        if not self.query_string.isascii():  # RFC 3986: anything else must arrive percent-encoded
            raise InvalidRequest("the query has raw non-ASCII characters", code="malformed_query")
        return _parse_pairs(self.query_string, "query")

    @property
    def content_type(self) -> str:
        return self.header("Content-Type").split(";", 1)[0].strip().lower()

    def header(self, name: str) -> str:
        """A header's value, ``""`` when absent; names are case-insensitive."""
        value = self.headers.get(name)
        if value is None:
            lowered = name.lower()
            value = next((v for k, v in self.headers.items() if k.lower() == lowered), "")
        return value

    @functools.cached_property
    def form(self) -> dict[str, list[str]]:
        """Fields of a form-encoded body (empty for other content types)."""
        if self.content_type != "application/x-www-form-urlencoded":
            return {}
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the form body is not valid UTF-8", code="malformed_body") from None
        return _parse_pairs(text, "body")

    def json(self) -> Any:
        """The body parsed as JSON (fractions as ``Decimal``); anything unreadable is ``InvalidRequest``."""
        try:
            return jsonutil.loads(self.body)
        except ValueError as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; any other JSON value is ``InvalidRequest``."""
        value = self.json()
        if not isinstance(value, dict):
            raise InvalidRequest("the body must be a JSON object", code="malformed_json")
        return value

    def param(self, name: str) -> Any:
        """``name`` from the query, else a form body, else a JSON object body; None when absent.

        A name given more than once, or with different values in two places, is ``InvalidRequest``:
        an ambiguous reference is never guessed at.
        """
        found: list[Any] = list(self.query.get(name, ()))
        found.extend(self.form.get(name, ()))
        # Providers label JSON bodies inconsistently, so any non-form body that opens an object counts.
        looks_like_json = self.body.lstrip()[:1] == b"{" and self.content_type != "application/x-www-form-urlencoded"
        if not found and looks_like_json:
            body = self.json_object()
            if name in body:
                found.append(body[name])
        distinct = {repr(v) for v in found}
        if len(distinct) > 1:
            raise InvalidRequest(f"{name} is given more than once with different values", code=f"ambiguous_{name}")
        return found[0] if found else None


@dataclasses.dataclass(frozen=True)
class Trigger:
    """What a verified inbound call points at.

    ``reference`` is what ``Provider.fetch`` looks up (MonCash ``transactionId``, a Monext session id).
    ``context`` holds any further plain-JSON facts ``fetch`` needs; it is stored with deferred
    verifications, so it must survive a JSON round trip. ``state`` is set only when the call is
    itself authoritative (a signed body carrying the whole transaction); then nothing is fetched.
    """

    reference: str
    context: dict[str, Any] = dataclasses.field(default_factory=dict)
    state: TransactionState | None = None


@dataclasses.dataclass(frozen=True)
class Reply:
    """The HTTP answer a provider expects to a callback it sent."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
