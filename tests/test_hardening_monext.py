"""Monext session ids from the outside world, over real HTTP: only Monext's alphabet reaches its API."""

from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server

from conftest import hub_of


@pytest.fixture
def live(app):
    """``app`` served on loopback, so that requests arrive exactly as a client sent them."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    server.server_close()


JUNK = [
    "..%2F..%2Fv1%2Fpayout%2Ftransactions%2F1",  # the buyer's return naming another API path
    "..%2F..%2Fsomething",
    "..",
    ".",
    "abc%2Fdef",
    "abc.def",
    "a%20b",
    "%3Cscript%3E",
    "abc%25def",
    "abc%3Fx%3D1",
    "abc%23frag",
    "%C3%A9t%C3%A9",
]


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("route", ["/hooks/monext?token=", "/return/monext?paylinetoken=",
                                   "/return/monext?monext_session_id="])
def test_a_session_id_outside_monexts_alphabet_is_400_and_never_asked_about(app, live, monext, recorder,
                                                                             route, junk):
    response = requests.get(live + route + junk, timeout=10, allow_redirects=False)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "malformed_session_id"
    assert monext.requests == []
    assert hub_of(app).store.list_calls()[0]["outcome"] == "malformed_session_id"


@pytest.mark.parametrize("send", [
    lambda url: requests.post(url + "/hooks/monext", data={"token": "../../v1/payout/transactions/1"}, timeout=10),
    lambda url: requests.post(url + "/hooks/monext", json={"token": "../../v1/payout/transactions/1"}, timeout=10),
], ids=["form", "json"])
def test_a_notification_body_naming_a_path_is_400_and_never_asked_about(app, live, monext, send):
    response = send(live)
    assert (response.status_code, response.json()["error"]) == (400, "malformed_session_id")
    assert monext.requests == []


@pytest.mark.parametrize("session_id", ["13fChMDzWfyVw6d2R2391553893852225", "fa1d1376-0cb1-4310-906f-d1c20f7b6866",
                                        "a_b"])
def test_session_ids_in_monexts_alphabet_are_asked_about(app, live, monext, session_id):
    monext.open_session("order-7001", 1999, session_id=session_id)
    monext.settle(session_id, "ACCEPTED")
    response = requests.get(f"{live}/hooks/monext?token={session_id}", timeout=10)
    assert (response.status_code, response.content) == (200, b"")
    assert monext.session_fetches(session_id) == 1
