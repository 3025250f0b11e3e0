"""A merchant handler module as a user would write one, loaded through HOOKHUB_HANDLERS.

It appends each event as a JSON line to the file named by HOOKHUB_TEST_EVENTS_FILE, so tests can
see what every gunicorn worker delivered. ``HOOKHUB_TEST_HANDLER_DELAY`` makes each delivery take that
many seconds, so that a test can kill a worker in the middle of one.
"""

import json
import os
import time

from hookhub import hookimpl


@hookimpl
def hookhub_handle_event(event):
    started = time.time()
    time.sleep(float(os.environ.get("HOOKHUB_TEST_HANDLER_DELAY", "0")))  # a merchant's slow work
    line = json.dumps({"pid": os.getpid(), "started": started, "ended": time.time(), **event.to_dict()}) + "\n"
    # O_APPEND writes of one short line are atomic, so workers never interleave lines.
    fd = os.open(os.environ["HOOKHUB_TEST_EVENTS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
