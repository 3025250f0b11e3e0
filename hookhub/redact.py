"""Keeping secrets out of everything hookhub stores or prints.

One ``Redactor`` per hub holds every configured secret in every form it may travel in (as is,
base64, percent-encoded, inside an HTTP Basic credential); the store runs every text it keeps
through it, and the log filter every line. Error texts and log lines are also cleaned of
credentials hookhub never configured (a bearer token a provider's OAuth endpoint issued, quoted back
in an error), by their shape.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
_MIN_FORM = 4  # an encoded form shorter than this would redact ordinary text

# Headers that carry credentials or signatures of credentials. Matching is case-insensitive and also
# catches vendor variants (X-Api-Key, X-Auth-Token, ...).
_SECRET_HEADER = re.compile(r"authorization|cookie|api[-_]?key|token|secret|password|signature", re.I)

# Credentials recognised by their shape: an Authorization scheme and its value, and the value of a
# credential-named field in JSON, a form, a query or a header quoted in text ("access_token": "...",
# password=..., X-Api-Key: ...). A quoted value is taken whole, spaces and all.
_CREDENTIAL_SHAPES = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|(?P<field>\b(?:access_token|refresh_token|id_token|client_secret|secret_key|secret|api[-_]?key|apikey"
    r"|password|passwd)[\"']?\s*[:=]\s*)(?:\"[^\"]*\"|'[^']*'|[^\"'&\s,;}]+)",
    re.I)


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters that depend on ``raw`` alone, wherever it starts in what was encoded.

    ``user:secret`` encoded for HTTP Basic holds one of these three for ``secret``, whatever the
    user is; so does any longer encoded text with the secret inside.
    """
    cores = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).decode()
            start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
            cores.add(text[start:end])
    return cores


def secret_forms(secret: str) -> set[str]:
    """``secret`` as it may appear in text: itself, JSON-escaped, percent-encoded, and base64 (both
    alphabets, at any alignment, and percent-encoded in turn)."""
    raw = secret.encode()
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()} | _base64_cores(raw)
    encoded |= {e.rstrip("=") for e in encoded}
    forms = {secret.replace("/", "\\/"), quote(secret), quote(secret, safe=""), quote_plus(secret)}
    forms |= encoded | {quote(e, safe="") for e in encoded}
    return {f for f in forms if len(f) >= _MIN_FORM} | {secret}


def basic_credentials(user: str, secret: str) -> str:
    """The token of ``Authorization: Basic <token>`` for ``user`` and ``secret``."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


class Redactor:
    """Takes every configured secret, in every form, out of text; and credentials by their shape."""

    def __init__(self, secrets: Iterable[str] = ()):
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= secret_forms(secret)
        # Longest first, so a secret inside a longer form is not half replaced. Case is ignored, as
        # percent-encoding's hex digits may come in either case.
        self.forms = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self.forms)), re.I) if self.forms else None
        self._bytes_pattern = (re.compile(b"|".join(re.escape(f.encode()) for f in self.forms), re.I)
                               if self.forms else None)

    def secrets_only(self, text: str) -> str:
        """``text`` without any configured secret: for what a caller sent (queries, bodies), where
        a field named ``password`` is the caller's business."""
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def text(self, text: str) -> str:
        """``text`` without any configured secret or credential-shaped value: for error texts and logs."""
        return _CREDENTIAL_SHAPES.sub(_keep_label, self.secrets_only(text))

    def body(self, body: bytes) -> bytes:
        return self._bytes_pattern.sub(REDACTED.encode(), body) if self._bytes_pattern is not None else body

    def mapping(self, data: Mapping) -> dict:
        """A deep copy of ``data`` whose string values hold no configured secret."""
        # One search over all the strings first: most provider answers hold no secret, and a
        # search of their joined text costs far less than a substitution in each string.
        found = self._pattern is not None and self._pattern.search("\x00".join(_strings(data))) is not None

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                return self.secrets_only(value) if found else value
            if isinstance(value, Mapping):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return clean(data)

    def headers(self, items: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Headers as a plain dict: credential-bearing ones by name, and any configured secret in
        any other, replaced.

        The scheme word of an ``Authorization`` header is kept (``WP3-callback [redacted]``) so an
        operator can still see which kind of credentials a call carried.
        """
        out: dict[str, str] = {}
        for name, value in items:
            if _SECRET_HEADER.search(name):
                scheme = value.split(" ", 1)[0] if name.lower().endswith("authorization") and " " in value else ""
                value = f"{scheme} {REDACTED}".strip()
            out[name] = self.secrets_only(value)
        return out


def _strings(value: Any) -> Iterator[str]:
    """Every string in ``value``, however deeply nested in mappings and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _keep_label(match: re.Match[str]) -> str:
    return (match.group("scheme") or match.group("field")) + REDACTED


NOTHING = Redactor()


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` without ``secrets`` (in any form) or credential-shaped values."""
    return Redactor(secrets).text(text)


class SecretFilter(logging.Filter):
    """A logging filter that rewrites records so no secret is ever printed."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_hookhub_scrubbed", None) is self:  # the logger's filter, then the handler's
            return True
        record._hookhub_scrubbed = self
        record.msg, record.args = self.redactor.text(record.getMessage()), None
        fields = getattr(record, "hookhub", None)  # an inbound call's fields, for structured output
        if isinstance(fields, dict):
            texts = [v for v in fields.values() if isinstance(v, str)]
            if self.redactor.text("\x00".join(texts)) != "\x00".join(texts):  # rarely: then field by field
                record.hookhub = {k: self.redactor.text(v) if isinstance(v, str) else v for k, v in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        return True
