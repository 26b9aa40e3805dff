"""A directory served over HTTP on 127.0.0.1 for tests: every GET recorded, HTTP Basic credentials
required if given."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from pathlib import Path


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, records every GET path and, if the server has `credentials`, refuses
    requests without them (HTTP Basic)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        with self.server.lock:
            self.server.gets.append(self.path)
        expected = self.server.credentials
        if expected:
            token = base64.b64encode(expected.encode()).decode()
            if self.headers.get("Authorization") != f"Basic {token}":
                self.send_error(401)
                return
        super().do_GET()


class Server:
    """Serves `root` until close(); `url` is its base URL, `gets` the paths asked for."""

    def __init__(self, root: Path, credentials: str = ""):
        self.root = root
        handler = functools.partial(_CountingHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.gets, self.httpd.lock, self.httpd.credentials = [], threading.Lock(), credentials
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def gets(self) -> list[str]:
        with self.httpd.lock:
            return list(self.httpd.gets)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
