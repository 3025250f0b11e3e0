"""The benchmark (bench/run) still runs end to end, and what hookhub did under its load is right.

No speed is asserted here: the figures are the benchmark's to report (bench/RESULTS.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/run installs it)")
def test_a_short_benchmark_run_is_consistent(tmp_path):
    figures_file = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(BENCH), "--duration", "1", "--warmup", "1", "--seed", "3000",
                           "--json", str(figures_file)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(figures_file.read_text())
    callbacks, returns = figures["callbacks"], figures["moncash_returns"]
    loads = [load for receiver in callbacks["receivers"].values() for load in receiver.values()]
    assert {(name, wc) for name, receiver in callbacks["receivers"].items() for wc in receiver} == {
        (name, wc) for name in ("bare", "durable") for wc in ("sync", "gthread")}
    for load in (*loads, callbacks["hookhub"]):
        assert load["requests"] > 0 and load["other"] == 0 and load["repeats"] == 0
    assert set(callbacks["ratios"]) == {"bare", "durable"} and all(r > 0 for r in callbacks["ratios"].values())
    for paced in (callbacks["paced"], callbacks["paced_own"]):
        assert paced["errors"] == 0 and paced["statuses"] == {"2xx": paced["sent"]} and paced["p99_ms"] > 0
    assert callbacks["consistent"] and callbacks["monri_events"] >= callbacks["accepted"] > 0
    assert callbacks["drained_seconds"] is not None  # every answered call reconciled, every delivery made
    assert returns["other"] == 0 and returns["status_3xx"] == returns["requests"]
    assert returns["consistent"] and returns["refused"] == 0
    assert 1 <= returns["token_requests"] <= figures["settings"]["workers"]  # one per worker, not per call
    assert all(0 < rss < 500 for rss in figures["rss_mb"]["hookhub"])
    seeded = figures["seeded"]  # the seeded history is there, and is not counted as the load's events
    assert seeded["rows"] == 3000 and set(seeded["listings_ms"]) == {"events list", "calls list", "deliveries queue"}
