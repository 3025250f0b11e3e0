"""gunicorn settings for ``hookhub serve`` (``--config python:hookhub.serving``).

The worker class and server hooks live here; ``hookhub serve`` passes the other settings on the
command line. With ``PROMETHEUS_MULTIPROC_DIR`` set, every worker keeps its metrics in files there
and ``/metrics`` adds them up, so the files of an earlier run go at start, and those of workers that
exit are forgotten.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

# hookhub logs one line per inbound call itself; gunicorn's access log would repeat it.
accesslog = None

# Reads every request whole before a thread runs it, so slow clients hold no thread (see workers.py).
worker_class = "hookhub.workers.BufferingWorker"
threads = 4
# What one connection may buffer and how many a worker reads at once bound its memory under a flood:
# 50 header lines of up to 8 kB (no provider sends a tenth of that) over 200 connections is at most
# about 80 MB a worker, where gunicorn's defaults (100 lines, 1000 connections) allow ten times more.
limit_request_fields = 50
worker_connections = 200

# Seconds that worker gives a client to send a whole request; ``hookhub serve --read-timeout``.
READ_TIMEOUT_VARIABLE = "_HOOKHUB_READ_TIMEOUT"
DEFAULT_READ_TIMEOUT = 10.0

# How prometheus_client's multiprocess mode names its files: ``<type>_<pid>.db``, a gauge's type
# carrying its mode (``gauge_livesum_<pid>.db``).
_METRICS_FILE = re.compile(r"(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if _METRICS_FILE.fullmatch(name):
                # Counters of an earlier run would be added to this one's. Only prometheus_client's
                # own files: the directory may be shared with files that are not ours to delete.
                os.remove(os.path.join(directory, name))


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    directory = os.environ.get("_HOOKHUB_METRICS_DIR_OWNED")
    if directory and directory == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(directory, ignore_errors=True)
