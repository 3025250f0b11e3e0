"""The receiver a merchant writes by hand from Monri's documentation: the floor hookhub is compared with.

It checks the WP3-callback digest over the raw body, parses the JSON (money as Decimal) and answers
200. It records nothing, deduplicates nothing and hands nothing on.
"""

import hashlib
import hmac
import json
import os
from decimal import Decimal

from flask import Flask, abort, request

app = Flask(__name__)
MERCHANT_KEY = os.environ["HOOKHUB_MONRI_MERCHANT_KEY"].encode()


@app.post("/hooks/monri")
def monri_callback():
    body = request.get_data()
    scheme, _, digest = request.headers.get("Authorization", "").partition(" ")
    expected = hashlib.sha512(MERCHANT_KEY + body).hexdigest()
    if scheme != "WP3-callback" or not hmac.compare_digest(expected, digest.strip().lower()):
        abort(401)
    payment = json.loads(body, parse_float=Decimal)
    if not isinstance(payment, dict) or "order_number" not in payment:
        abort(400)
    return "", 200
