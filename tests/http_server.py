"""A file server on the loopback interface for the download tests: it serves bytes by path,
honours range requests (or, asked to, ignores them), can break a transfer part-way, and
records what it was asked, so no test ever reaches another machine."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """What the server holds and how it behaves; tests change it between requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True
    #: Path -> bytes to send before dropping the connection, once (then it is removed).
    cut_once: dict[str, int] = field(default_factory=dict)
    #: Answer a range request with a part that starts at byte 0 (a broken server).
    range_from_zero: bool = False
    #: Path -> Content-Type (default application/octet-stream).
    content_types: dict[str, str] = field(default_factory=dict)
    #: Paths served without Content-Length, the end marked by closing the connection.
    no_length: set[str] = field(default_factory=set)
    #: (path, Range header or None) of every GET, in order.
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        served = self.server.served  # type: ignore[attr-defined]
        asked = self.headers.get("Range")
        served.requests.append((self.path, asked))
        body = served.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if served.ranges and match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if served.range_from_zero:
                start = 0
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", served.content_types.get(self.path, "application/octet-stream"))
        if self.path not in served.no_length:
            self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = served.cut_once.pop(self.path, None)
        self.wfile.write(body[start:] if cut is None else body[start : start + cut])
        if cut is not None:
            self.close_connection = True


class LoopbackServer:
    """``with LoopbackServer() as server``: ``server.url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self):
        self.served = Served()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.served = self.served  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> LoopbackServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
