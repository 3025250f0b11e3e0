"""``hookhub serve`` starts the metrics directory afresh by removing prometheus_client's files from an
earlier run, and nothing else that is there."""

from __future__ import annotations

import pytest

from servers import Gunicorn

pytestmark = pytest.mark.server


def test_serve_removes_only_prometheus_files_from_the_metrics_directory(tmp_path, moncash, monri, monext):
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = ["counter_123.db", "gauge_livesum_123.db", "gauge_all_123.db", "histogram_123.db", "summary_123.db"]
    kept = ["store.db", "counter.db", "notes_123.db", "counter_123.db.bak"]
    for name in stale + kept:
        (directory / name).write_bytes(b"from before")

    server = Gunicorn(tmp_path, moncash, monri, monext, serve=True, env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    try:
        for name in stale:
            assert not (directory / name).exists(), name
    finally:
        server.close()
    for name in kept:  # not even the end of the run takes them: the directory is not hookhub's own
        assert (directory / name).read_bytes() == b"from before", name
