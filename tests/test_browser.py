"""A shop's payment clicked through in a real browser: the README's shop, hookhub under gunicorn and
the MonCash sandbox's payment page, driven by Debian's chromium through Playwright."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import SECRET_KEY, moncash_config
from servers import Gunicorn, free_port

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def readme_shop() -> str:
    """The Python block under ``<!-- shop-example -->`` in the README: the shop as users copy it."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- shop-example -->\n```python\n(.*?)```", text, re.S)
    assert found, "the README lost its shop example"
    return found.group(1)


def _unavailable(why: str) -> None:
    if os.environ.get("HOOKHUB_TEST_REQUIRE_BROWSER", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"a browser is required here: {why}")
    pytest.skip(why)


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no browser: {CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shop(tmp_path, moncash):
    """The README's shop as its own process, on hookhub's store and the MonCash sandbox."""
    processes = []

    def start(database_url: str, port: int) -> str:
        folder = tmp_path / "shop"
        folder.mkdir()
        (folder / "shop.py").write_text(readme_shop())
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **moncash_config(moncash),
               "HOOKHUB_DATABASE_URL": database_url, "HOOKHUB_SECRET_KEY": SECRET_KEY, "SHOP_SECRET": "test-shop",
               "HOOKHUB_INSTANCE_PATH": str(folder / "instance")}
        log = open(folder / "shop.log", "wb")
        processes.append((subprocess.Popen([sys.executable, "-m", "flask", "--app", "shop", "run", "--port", str(port)],
                                           cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=2)
                return url
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the shop did not start: " + (folder / "shop.log").read_text())

    yield start
    for process, log in processes:
        process.terminate()
        process.wait(10)
        log.close()


def test_a_buyer_pays_on_the_sandbox_page_and_lands_on_the_shop_with_one_event(tmp_path, browser, shop, moncash,
                                                                               monri, monext):
    shop_port = free_port()
    hookhub_server = Gunicorn(tmp_path, moncash, monri, monext, env={
        "HOOKHUB_SUCCESS_URL": f"http://127.0.0.1:{shop_port}/thanks",
        "HOOKHUB_FAILURE_URL": f"http://127.0.0.1:{shop_port}/thanks"})
    try:
        moncash.hookhub_url = hookhub_server.url  # where MonCash's portal would send alerts and buyers
        shop_url = shop(hookhub_server.database_url, shop_port)
        page = browser.new_page()
        page.goto(shop_url)
        page.click("text=Pay 10.50 HTG with MonCash")
        page.wait_for_url(re.compile(re.escape(moncash.gateway_url) + r"/Payment/Redirect\?token="))
        assert "10.50" in page.content()
        page.screenshot(path=str(tmp_path / "moncash-pay-page.png"))
        page.click("button[value=pay]")
        page.wait_for_url(re.compile(r"/thanks\?result="), timeout=15000)
        body = page.inner_text("body")
        delivered = hookhub_server.wait_for_deliveries(1, timeout=30)
    finally:
        hookhub_server.close()
    order_id = re.search(r"Order (order-[0-9a-f]{8}): approved", body)
    assert order_id, body
    assert [(e["type"], e["order_id"], e["amount"], e["currency"]) for e in delivered] == \
        [("payment.approved", order_id.group(1), 1050, "HTG")]
