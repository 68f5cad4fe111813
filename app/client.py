"""Whether the client of the request being served is still connected: a synchronous Execute whose
client has hung up is ended instead of running to its time limit for nobody (``scheduler/interrupts.py``).

gunicorn hands the application the connection's socket (``environ["gunicorn.socket"]``). Once the
request has been read, the client sends nothing until it has its answer, so a peek that finds the end
of the stream (or a reset) means it has gone; one that finds bytes (a pipelined next request) or none
yet means it is still there. The look costs one non-blocking system call. Elsewhere (the test client,
another server, TLS, where a peek would read encrypted records) nothing can be told, and nothing is
ended early. A client that half-closes its sending side while waiting counts as gone: HTTP/1.1 clients
do not do that.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

GUNICORN_SOCKET = "gunicorn.socket"


def disconnect_check(environ: Mapping[str, Any]) -> Callable[[], bool] | None:
    """A function telling whether the client of this WSGI request has gone; None when it cannot tell."""
    sock = environ.get(GUNICORN_SOCKET)
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        return None

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):  # nothing to read: still waiting for its answer
            return False
        except OSError:  # reset by the peer, or the socket is closed already
            return True

    return gone
