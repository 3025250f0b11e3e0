"""Monri's digests against the provider's own published vector, and the verifiers' refusals."""

from __future__ import annotations

import hashlib
import json

import pytest

from hookhub import InvalidSignature
from hookhub_monri import signing

KEY, TOKEN, TS = "qwert1234", "7db11ea5d4a1af32421b564c79b946d1ead3daf0", 1593457122
PUBLISHED = ("bd120476c656a8ec3ce5d6a150f17061d03a8e280b0fbba278a73a15066830562f73ce5536882c9222e265f1ff6c2df629"
             "173375b549cba5a9275b08686f32ea")


def test_published_wp3_v21_vector():
    body = json.dumps({"example": "1"}, separators=(",", ":"))
    assert signing.api_digest(KEY, TS, TOKEN, "/v2/payment/new", body) == PUBLISHED
    assert signing.api_authorization(KEY, TOKEN, TS, "/v2/payment/new", body) == f"WP3-v2.1 {TOKEN} {TS} {PUBLISHED}"


def test_callback_digest_covers_the_exact_bytes():
    body = b'{"order_number":"a","amount":100}'
    good = hashlib.sha512(KEY.encode() + body).hexdigest()
    signing.verify_callback(KEY, f"WP3-callback {good}", body)
    signing.verify_callback(KEY, f"WP3-callback {good.upper()}", body)
    for header, raw in [
        (f"WP3-callback {good}", body + b" "),
        (f"WP3-callback {good[:-1]}0", body),
        (f"WP3-v2.1 {good}", body),
        ("WP3-callback", body),
        ("", body),
        ("WP3-callback \u00e9\u00e9", body),
    ]:
        with pytest.raises(InvalidSignature):
            signing.verify_callback(KEY, header, raw)


def test_return_digest_is_over_the_public_url_without_the_digest():
    query = "acquirer=integration_acq&amount=100&order_number=abc&response_code=0000"
    url = f"https://shop.example/hh/return/monri?{query}"
    digest = hashlib.sha512((KEY + url).encode()).hexdigest()
    signing.verify_return(KEY, "https://shop.example/hh", "/return/monri", f"{query}&digest={digest}")
    with pytest.raises(InvalidSignature):
        signing.verify_return(KEY, "https://shop.example/hh", "/return/monri",
                              f"{query.replace('100', '1')}&digest={digest}")
    with pytest.raises(InvalidSignature):
        signing.verify_return(KEY, "http://other.example/hh", "/return/monri", f"{query}&digest={digest}")
    with pytest.raises(InvalidSignature):
        signing.verify_return(KEY, "https://shop.example/hh", "/return/monri", query)
