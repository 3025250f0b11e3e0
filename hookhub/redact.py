"""Keeping secrets out of everything hookhub stores or prints."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"

# Headers that carry credentials or signatures of credentials. Matching is case-insensitive and also
# catches vendor variants (X-Api-Key, X-Auth-Token, ...).
_SECRET_HEADER = re.compile(r"authorization|cookie|api[-_]?key|token|secret|password|signature", re.I)


def headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a plain dict with credential-bearing values replaced.

    The scheme word of an ``Authorization`` header is kept (``WP3-callback [redacted]``) so an
    operator can still see which kind of credentials a call carried.
    """
    out: dict[str, str] = {}
    for name, value in items:
        if _SECRET_HEADER.search(name):
            scheme = value.split(" ", 1)[0] if name.lower().endswith("authorization") and " " in value else ""
            value = f"{scheme} {REDACTED}".strip()
        out[name] = value
    return out


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def scrub_mapping(data: Mapping, secrets: Iterable[str]) -> dict:
    """A deep copy of ``data`` whose string values have every secret replaced."""
    secrets = [s for s in secrets if s]

    def clean(value):
        if isinstance(value, str):
            return scrub(value, secrets)
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(data)


class SecretFilter(logging.Filter):
    """A logging filter that rewrites records so no configured secret is ever printed."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = scrub(record.getMessage(), self.secrets), None
        fields = getattr(record, "hookhub", None)  # an inbound call's fields, for structured output
        if isinstance(fields, dict):
            record.hookhub = scrub_mapping(fields, self.secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        return True
