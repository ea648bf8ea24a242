"""A tiny HTTP service that counts every request it answers: the e2e oracle.

The remote-worker test checks the transport of records, not the marketplace: what
matters is an independent count of the requests that reached a service, to compare
with the records in the run directory. Every request gets ``200 {}``; ``GET
/__count`` answers the counts, in total and per client address (and is not counted).
Standard library only.

    python counting_server.py HOST PORT
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_count: dict = {"n": 0, "by_client": {}}
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/__count":
            with _lock:
                body = json.dumps({"requests": _count["n"], "by_client": _count["by_client"]})
            body = body.encode()
        else:
            client = self.client_address[0]
            with _lock:
                _count["n"] += 1
                _count["by_client"][client] = _count["by_client"].get(client, 0) + 1
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
