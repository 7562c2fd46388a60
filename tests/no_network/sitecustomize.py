"""No test reaches another machine. Python imports this module at start-up from every
`mer-bench` a test runs (``run_cli`` puts this folder on PYTHONPATH), and the test session
uses :func:`guard` too (tests/conftest.py): a TCP connection beyond the loopback interface,
where tests serve their own files, fails at once. UDP "connects", which send nothing, stay
allowed (Ray finds its own address that way)."""

from __future__ import annotations

import socket

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def guard(connect, error: type[Exception]):
    """``socket.socket.connect`` that raises ``error`` for a TCP address beyond loopback."""

    def guarded(sock, address):
        if sock.type == socket.SOCK_STREAM and isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise error(f"a test tried to connect to {address}: tests never leave the loopback interface")
        return connect(sock, address)

    return guarded


if __name__ == "sitecustomize":
    # In a subprocess: an OSError, which the code under test reports like any network failure.
    socket.socket.connect = guard(socket.socket.connect, OSError)
