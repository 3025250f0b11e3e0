"""The merchant handler the benchmark runs: it takes each event and does nothing with it.

With it, every event has one delivery to make, so the benchmark pays for hookhub's deliveries as
a real deployment does.
"""

from hookhub import hookimpl


@hookimpl
def hookhub_handle_event(event):
    pass
