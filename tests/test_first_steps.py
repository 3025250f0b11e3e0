"""A new user's first steps, as the README gives them: the sandbox, `hookhub serve --sandbox`, simulated
payments, the handler printing each event; then `hookhub plugins`, `/metrics` and the log show what
happened. Real processes throughout: the console script, gunicorn with two workers, the sandbox."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from servers import free_port

pytestmark = pytest.mark.server

HOOKHUB = str(Path(sys.executable).with_name("hookhub"))

SHOP_HOOKS = '''\
from hookhub import hookimpl

@hookimpl
def hookhub_handle_event(event):
    print("handler got", event.type, event.order_id, event.amount, event.currency, flush=True)
'''


def start(args, cwd, env, log):
    return subprocess.Popen([HOOKHUB, *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


def run(args, cwd, env):
    return subprocess.run([HOOKHUB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def metric(text, name, **labels):
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'([a-z_]+)="([^"]*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match[3])
    return total


@pytest.fixture
def shop(tmp_path):
    (tmp_path / "shop_hooks.py").write_text(SHOP_HOOKS)
    sandbox_port, hookhub_port = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HOOKHUB_", "PROMETHEUS_"))},
           "HOOKHUB_HANDLERS": "shop_hooks", "HOOKHUB_INSTANCE_PATH": str(tmp_path / "instance"),
           "HOOKHUB_LOG_FORMAT": "json", "HOOKHUB_SCHEDULER_INTERVAL": "0.2"}
    sandbox_url, hookhub_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{hookhub_port}"
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("sandbox", "serve")}
    sandbox = start(["sandbox", "--bind", f"127.0.0.1:{sandbox_port}", "--hookhub", hookhub_url], tmp_path, env,
                    logs["sandbox"])
    server = start(["serve", "--sandbox", sandbox_url, "--bind", f"127.0.0.1:{hookhub_port}", "--workers", "2"],
                   tmp_path, env, logs["serve"])
    try:
        wait_for(f"{sandbox_url}/moncash/Api/oauth/token")
        wait_for(f"{hookhub_url}/healthz")
        yield {"dir": tmp_path, "env": env, "sandbox": sandbox_url, "hookhub": hookhub_url, "server": server,
               "log": tmp_path / "serve.log"}
    finally:
        stop(server)
        stop(sandbox)
        for log in logs.values():
            log.close()


def test_sandbox_serve_simulate_and_see_what_happened(shop):
    where = ["--hookhub", shop["hookhub"], "--sandbox", shop["sandbox"]]
    plays = [(["moncash"], "payment.approved"), (["monri", "--amount", "1999"], "payment.approved"),
             (["monext", "--status", "declined"], "payment.declined")]
    orders = []
    for args, _ in plays:
        done = run(["simulate", *args, *where], shop["dir"], shop["env"])
        assert done.returncode == 0, done.stdout + done.stderr
        orders.append(re.search(r"for order (\S+),", done.stdout)[1])
    assert "303" in run(["simulate", "moncash", *where], shop["dir"], shop["env"]).stdout  # the buyer's redirect

    # The handler, in a gunicorn worker, prints each event.
    expected = [f"handler got {kind} {order}" for (_, kind), order in zip(plays, orders)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(e in shop["log"].read_text() for e in expected):
        time.sleep(0.2)
    output = shop["log"].read_text()
    for line in expected:
        assert line in output
    assert "handler got payment.approved " + orders[1] + " 1999 EUR" in output

    listed = run(["plugins", "--json"], shop["dir"], shop["env"])
    plugins = {p["plugin"]: p for p in json.loads(listed.stdout)}
    assert plugins["shop_hooks"]["hooks"] == ["hookhub_handle_event"]
    assert plugins["shop_hooks"]["deliveries"] == {"done": 4, "pending": 0, "dead": 0}
    assert plugins["moncash"]["from"].startswith("hookhub ")

    # Two workers answered the calls; every scrape, whichever worker takes it, adds both up.
    for _ in range(6):
        text = requests.get(f"{shop['hookhub']}/metrics", timeout=5).text
        assert metric(text, "hookhub_inbound_calls_total") == 4
        assert metric(text, "hookhub_inbound_calls_total", provider="moncash", route="return", outcome="event") == 2
        assert metric(text, "hookhub_inbound_calls_total", provider="monext", route="callback") == 1
        assert metric(text, "hookhub_handler_seconds_count", handler="shop_hooks") == 4
        assert metric(text, "hookhub_provider_api_seconds_count", provider="moncash") >= 3  # tokens and fetches
        assert metric(text, "hookhub_deliveries", handler="shop_hooks", status="pending") == 0
        assert metric(text, "hookhub_oldest_pending_delivery_age_seconds") == 0

    # One JSON line per inbound call, with what became of it; no secret anywhere in the log.
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    calls = [e for e in entries if "outcome" in e]
    assert sorted((e["provider"], e["route"], e["outcome"], e["status"]) for e in calls) == [
        ("moncash", "return", "event", 303), ("moncash", "return", "event", 303),
        ("monext", "callback", "event", 200), ("monri", "callback", "accepted", 200)]
    assert all(e["transaction"] and e["latency_ms"] > 0 for e in calls)
    assert "sandbox-client-secret" not in output and "sandbox-monri-merchant-key" not in output

    # The metrics directory `hookhub serve` made goes when the server does.
    environ = Path(f"/proc/{shop['server'].pid}/environ").read_bytes().split(b"\0")
    [metrics_dir] = [v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert glob.glob(os.path.join(metrics_dir, "*.db"))
    stop(shop["server"])
    assert not os.path.exists(metrics_dir)
