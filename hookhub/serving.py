"""gunicorn settings for ``hookhub serve`` (``--config python:hookhub.serving``).

Only server hooks live here; ``hookhub serve`` passes the other settings on the command line. With
``PROMETHEUS_MULTIPROC_DIR`` set, every worker keeps its metrics in files there and ``/metrics``
adds them up, so the directory must start empty and forget the workers that exit.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import Any

# hookhub logs one line per inbound call itself; gunicorn's access log would repeat it.
accesslog = None


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)  # counters of an earlier run would be added to this one's


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    directory = os.environ.get("_HOOKHUB_METRICS_DIR_OWNED")
    if directory and directory == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(directory, ignore_errors=True)
