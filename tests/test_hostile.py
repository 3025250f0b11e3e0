"""Property-based attacks on every route: whatever arrives, hookhub never errs, never reflects the
input unescaped, and never makes an event."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SECRET_KEY, hub_of, moncash_config, monext_config, monri_config, new_postgresql_schema
from hookhub import create_app

MARKER = "<script>alert('hh')</script>"
PROVIDERS = ["moncash", "monri", "monext", "nosuch", "MONRI", "..", "%00"]
PATHS = [f"/{route}/{p}" for route in ("hooks", "return") for p in PROVIDERS] + [
    "/healthz", "/result/success", "/result/failure", "/result/pending", "/result/" + quote(MARKER), "/metrics"]
NAMES = ["transactionId", "token", "paylinetoken", "monext_session_id", "order_number", "amount", "digest",
         "currency", "response_code", "notificationType", "id", "event", "payload"]
NASTY = [MARKER, "' OR 1=1 --", "${jndi:ldap://x}", "../../etc/passwd", "\u202e\u0000\ufeff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "NaN",
         "1e999", "-1", "9" * 400, "", " ", "%", "%ff", "null", "[]", "{}"]
SCALARS = st.one_of(st.sampled_from(NASTY), st.text(max_size=40), st.integers(), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=12)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def raw_json(value) -> bytes:
    return json.dumps(value).encode()


# Complete, well-formed Monri callbacks, so a missing signature check would show as an event.
MONRI_CALLBACKS = st.fixed_dictionaries({
    "order_number": st.sampled_from(NASTY) | st.text(min_size=2, max_size=20), "amount": st.integers(1, 10**6),
    "currency": st.sampled_from(["EUR", "BAM", MARKER]), "status": st.just("approved"),
    "response_code": st.just("0000"), "transaction_type": st.sampled_from(["purchase", "authorize", "refund"]),
    "id": st.integers(1, 10**9),
}).map(raw_json)
BODIES = st.one_of(
    st.binary(max_size=512),
    MONRI_CALLBACKS,
    MONRI_CALLBACKS.map(lambda raw: b'{"event": "transaction:approved", "payload": ' + raw + b"}"),
    JSON_VALUES.map(raw_json),
    st.dictionaries(st.sampled_from(NAMES), SCALARS, max_size=6).map(raw_json),
    st.sampled_from([nested(50_000), b'{"transactionId": NaN}', b'{"amount": 1e999}', b'{"token": Infinity}',
                     b'{"order_number": 1, "amount": "1" , "currency": []}', b"\xff\xfe\x00", b"x" * 70_000,
                     b'{"event": "transaction:approved", "payload": ' + b'{"a":' * 500 + b"1" + b"}" * 500 + b"}"]),
)
QUERIES = st.one_of(
    st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=10), st.sampled_from(NASTY) | st.text(max_size=30)),
             max_size=6).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80),
)
HEADERS = st.dictionaries(
    st.sampled_from(["Authorization", "Content-Type", "X-Forwarded-For", "X-Forwarded-Host", "Cookie", "Accept",
                     "Content-Encoding", "Transfer-Encoding-Hint"]),
    st.sampled_from(["WP3-callback " + "0" * 128, "Bearer x", "application/json", "application/x-www-form-urlencoded",
                     "text/html", "gzip", MARKER, "multipart/form-data; boundary=x", "\u00e9t\u00e9"]),
    max_size=4)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hostile_app(request, tmp_path_factory, moncash_server, monri_server, monext_server):
    moncash_server.reset()
    monri_server.reset()
    monext_server.reset()
    config = {"HOOKHUB_SECRET_KEY": SECRET_KEY, "HOOKHUB_SCHEDULER": False, "HOOKHUB_HTTP_TIMEOUT": 2.0,
              **moncash_config(moncash_server), **monri_config(monri_server), **monext_config(monext_server)}
    if request.param == "postgresql":  # PostgreSQL keeps text more strictly than SQLite (no NUL, say)
        config["HOOKHUB_DATABASE_URL"] = new_postgresql_schema(request.getfixturevalue("postgresql_database"))
    app = create_app(config, instance_path=str(tmp_path_factory.mktemp("hostile")), environ={})
    yield app
    hub_of(app).close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
       path=st.sampled_from(PATHS), query=QUERIES, headers=HEADERS, body=BODIES)
def test_no_input_makes_an_error_a_reflection_or_an_event(hostile_app, method, path, query, headers, body):
    client = hostile_app.test_client()
    headers = {k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()}
    response = client.open(path + ("?" + query if query else ""), method=method, headers=headers, data=body)

    assert response.status_code < 500 or (response.status_code == 503 and path.startswith("/hooks/")), \
        response.get_data(as_text=True)[:500]
    assert MARKER.encode() not in response.data
    # (OPTIONS is answered by Flask itself with the allowed methods; the body is never read.)
    if len(body) > hostile_app.config["MAX_CONTENT_LENGTH"] and path.startswith(("/hooks/", "/return/")) \
            and method != "OPTIONS":
        assert response.status_code == 413
    if response.status_code >= 400 and method != "HEAD" and not path.startswith("/result/"):  # those are for people
        assert response.is_json and set(response.get_json()) == {"error", "message"}
    assert hub_of(hostile_app).store.list_events(limit=1) == []


@pytest.mark.parametrize("path", [f"/{route}/{provider}" for route in ("hooks", "return")
                                  for provider in ("moncash", "monri", "monext")])
@pytest.mark.parametrize("name", NAMES)
def test_input_is_never_reflected(hostile_app, path, name):
    client = hostile_app.test_client()
    answers = [
        client.get(f"{path}?{name}={quote(MARKER)}"),
        client.post(f"{path}?{quote(MARKER)}=1", data={name: MARKER}),
        client.post(path, json={name: MARKER, MARKER: MARKER}),
    ]
    for response in answers:
        assert response.status_code < 500
        assert MARKER.encode() not in response.data and quote(MARKER).encode() not in response.data
        assert json.dumps(MARKER).encode()[1:-1] not in response.data  # not even JSON-escaped


@pytest.mark.parametrize("authorization", [None, "WP3-callback " + "0" * 128, "WP3-callback", "Bearer x",
                                           "WP3-callback " + "f" * 127 + "g"])
def test_complete_but_unsigned_monri_callbacks_make_nothing(hostile_app, authorization):
    body = raw_json({"order_number": "order-forged", "amount": 100, "currency": "EUR", "status": "approved",
                     "response_code": "0000", "transaction_type": "purchase", "id": 7})
    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    client = hostile_app.test_client()
    for data in (body, b'{"event": "transaction:approved", "payload": ' + body + b"}"):
        response = client.post("/hooks/monri", data=data, headers=headers)
        assert (response.status_code, response.get_json()["error"]) == (401, "invalid_signature")
    assert hub_of(hostile_app).store.list_events(limit=1) == []


@pytest.mark.parametrize("path", ["/hooks/moncash%00", "/hooks/mon%00cash", "/return/x%00y",
                                  "/return/moncash?transactionId=a%00b", "/hooks/monext?token=%00",
                                  "/hooks/moncash?%00=%00"])
def test_nul_anywhere_is_refused_and_recorded(hostile_app, path):
    client = hostile_app.test_client()
    before = len(hub_of(hostile_app).store.list_calls(limit=10_000))
    for response in (client.get(path), client.post(path, json={"transactionId": "a\u0000b"})):
        assert 400 <= response.status_code < 500 and response.is_json, response.get_data(as_text=True)
    assert len(hub_of(hostile_app).store.list_calls(limit=10_000)) == before + 2
