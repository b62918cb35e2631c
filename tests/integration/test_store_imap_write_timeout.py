"""basalt-store IMAP: a client that stops reading is closed when the write timeout fires.

libevent disables writing on a write timeout, so a session that answers it with a BYE and then
waits for its output to flush waits forever: the session, its socket and its connection slot
leak (fixed for POP3 in a509c06, for IMAP in e090427). Reached before login with the login timeout
(1 s here): pipelined CAPABILITYs fill the output, reading stops (output cap), only the write
timeout is armed."""

from __future__ import annotations

import socket
import time

import pytest

import basalt_cluster as bc

@pytest.fixture
def store(make_store):
    return make_store(services=("lmtp", "imap"), service_keys={"imap": "login_timeout_s = 1\n"})


def test_write_timeout_closes_a_client_that_stopped_reading(store):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((bc.LOOPBACK, store.port("imap")))
    sock.settimeout(3)
    try:
        peer = f"ip={bc.LOOPBACK}:{sock.getsockname()[1]} "
        try:
            sock.sendall(b"a CAPABILITY\r\n" * 40000)  # ~8 MB of replies, never read
        except (socket.timeout, OSError):
            pass  # the server stopped reading: that is the point
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline and not closed:
            time.sleep(0.2)
            closed = any(peer in l and "action=close" in l for l in store.log_text().splitlines())
        assert closed, "the session never closed after its write timeout"
    finally:
        sock.close()
