"""hookhub's own minimal pages for buyers, used when the merchant configured none."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, make_response, render_template_string, request

from .. import tokens
from ..errors import InvalidResultToken
from ..states import buyer_outcome
from .routes import private

bp = Blueprint("pages", __name__)


_TEXT = {
    "success": ("Payment received", "Thank you: your payment is confirmed."),
    "failure": ("Payment not completed", "Your payment did not go through. You have not been charged."),
    "pending": ("Confirming your payment", "We are confirming your payment with the provider. "
                "You will be notified as soon as it is confirmed; there is no need to pay again."),
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{{ title }}</h1><p>{{ text }}</p>
{% if order_id %}<p>Order: {{ order_id }}</p>{% endif %}</main></body></html>
"""


@bp.route("/result/<any(success, failure, pending):page>")
def result(page: str) -> Response:
    return private(make_response(_result(page)))


def _result(page: str) -> tuple[str, int]:
    try:
        data = tokens.read(request.args.get("result", ""), current_app.config["SECRET_KEY"],
                           current_app.config["HOOKHUB_RESULT_MAX_AGE"])
    except InvalidResultToken:
        # Without a valid token the page claims nothing about any payment.
        title, text = "Payment status unavailable", "This link is invalid or has expired."
        return render_template_string(_PAGE, title=title, text=text, order_id=None), 400
    # The signed status decides what is shown, never the URL the buyer holds.
    title, text = _TEXT[buyer_outcome(data["status"])]
    return render_template_string(_PAGE, title=title, text=text, order_id=data["order_id"]), 200
