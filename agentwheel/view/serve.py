"""Serving the page on the loopback interface only (`agentwheel view --serve`)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


def page_server(page: str, port: int = 0) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1 that answers GET / with the page and 404 otherwise;
    port 0 picks a free one (read it from `server.server_address`)."""
    body = page.encode("utf-8")

    class PageHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would bury the address printed at start

    return ThreadingHTTPServer((LOOPBACK, port), PageHandler)
