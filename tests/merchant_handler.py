"""A merchant handler module as a user would write one, loaded through HOOKHUB_HANDLERS.

It appends each event as a JSON line to the file named by HOOKHUB_TEST_EVENTS_FILE, so tests can
see what every gunicorn worker delivered.
"""

import json
import os

from hookhub import hookimpl


@hookimpl
def hookhub_handle_event(event):
    line = json.dumps({"pid": os.getpid(), **event.to_dict()}) + "\n"
    # O_APPEND writes of one short line are atomic, so workers never interleave lines.
    fd = os.open(os.environ["HOOKHUB_TEST_EVENTS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
