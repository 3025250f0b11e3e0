"""Real HTTP fakes of the providers' APIs, served on a loopback port for the tests."""

from __future__ import annotations

import threading

from werkzeug.serving import make_server


class Served:
    """A WSGI app served by werkzeug on 127.0.0.1 in a background thread."""

    def __init__(self, wsgi_app):
        self.server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-provider", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
