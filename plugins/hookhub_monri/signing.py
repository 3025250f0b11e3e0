"""Monri's three digests, each a hex SHA-512 with the merchant key in front.

- ``WP3-v2.1`` on hookhub's API calls: ``sha512(merchant_key + timestamp + authenticity_token +
  fullpath + body)``, with ``fullpath`` including the query string and ``body`` empty for GET.
- ``WP3-callback`` on Monri's callbacks and webhooks: ``sha512(merchant_key + raw_body)``.
- the success-URL digest on buyers' returns: ``sha512(merchant_key + full URL without &digest=...)``.

Verification compares in constant time and turns every malformed input into ``InvalidSignature``.
"""

from __future__ import annotations

import hashlib
import hmac

from hookhub import InvalidRequest, InvalidSignature

API_SCHEME = "WP3-v2.1"
CALLBACK_SCHEME = "WP3-callback"


def _sha512(*parts: str | bytes) -> str:
    digest = hashlib.sha512()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
    return digest.hexdigest()


def api_digest(merchant_key: str, timestamp: int | str, authenticity_token: str, fullpath: str, body: str) -> str:
    return _sha512(merchant_key, str(timestamp), authenticity_token, fullpath, body)


def api_authorization(merchant_key: str, authenticity_token: str, timestamp: int, fullpath: str, body: str) -> str:
    """The ``Authorization`` header value of one API request."""
    digest = api_digest(merchant_key, timestamp, authenticity_token, fullpath, body)
    return f"{API_SCHEME} {authenticity_token} {timestamp} {digest}"


def callback_digest(merchant_key: str, raw_body: bytes) -> str:
    return _sha512(merchant_key, raw_body)


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace"))


def verify_callback(merchant_key: str, authorization: str, raw_body: bytes) -> None:
    """Check ``Authorization: WP3-callback <hex>`` over the exact raw bytes; raise ``InvalidSignature``."""
    scheme, _, given = authorization.strip().partition(" ")
    if scheme != CALLBACK_SCHEME or not given.strip():
        raise InvalidSignature(f"an Authorization header of the form '{CALLBACK_SCHEME} <digest>' is required")
    if not _same(callback_digest(merchant_key, raw_body), given.strip()):
        raise InvalidSignature("the WP3-callback digest does not match the body")


def unsigned_url(public_url: str, path: str, raw_query: str) -> tuple[str, str]:
    """The URL Monri signed, and the digest it carries, from the request as received.

    The digest is the last query parameter; removing ``&digest=...`` from the raw query string
    (percent-encoding untouched) gives exactly what Monri hashed.
    """
    pairs = raw_query.split("&") if raw_query else []
    digests = [p for p in pairs if p.startswith("digest=")]
    if len(digests) != 1:
        raise InvalidSignature("the return URL must carry exactly one digest")
    kept = "&".join(p for p in pairs if not p.startswith("digest="))
    if not kept:
        raise InvalidRequest("the return URL carries no parameters", code="missing_parameters")
    return f"{public_url}{path}?{kept}", digests[0][len("digest="):]


def verify_return(merchant_key: str, public_url: str, path: str, raw_query: str) -> None:
    """Check a success-URL digest; raise ``InvalidSignature`` when the URL was altered."""
    url, given = unsigned_url(public_url, path, raw_query)
    if not _same(_sha512(merchant_key, url), given):
        raise InvalidSignature("the return URL's digest does not match")
