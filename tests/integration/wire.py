"""Raw protocol clients for the integration tests: exact bytes in, exact lines out.

imaplib/poplib hide what the server said on errors and cannot send malformed input, so the
error-path tests talk to the proxy through these instead.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.request

LOOPBACK = "127.0.0.1"


class Conn:
    """A line-oriented TCP (optionally TLS) client with bounded waits."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None, source: str | None = None,
                 timeout: float = 10.0) -> None:
        raw = socket.create_connection((LOOPBACK, port), timeout=timeout,
                                       source_address=(source, 0) if source else None)
        self.sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        self.timeout = timeout
        self.buf = b""

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self, timeout: float | None = None) -> str:
        """The next CRLF-terminated line (without CRLF). Raises EOFError when closed."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete line; have {self.buf[:200]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; have {self.buf[:200]!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def until_tag(self, tag: str, timeout: float | None = None) -> list[str]:
        """Lines up to and including the one tagged `tag`."""
        lines = []
        while True:
            lines.append(self.line(timeout))
            if lines[-1].startswith(tag + " "):
                return lines

    def command(self, tag: str, text: str, timeout: float | None = None) -> list[str]:
        self.send(f"{tag} {text}\r\n")
        return self.until_tag(tag, timeout)

    def closed(self, timeout: float = 5.0) -> bool:
        """True if the peer closes within `timeout` (any pending lines are discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, ssl.SSLError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def starttls(self, context: ssl.SSLContext) -> None:
        assert not self.buf, f"unread data before TLS: {self.buf!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def client_tls(ca: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    return ctx


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{password}")


def metrics(proxy) -> dict[str, float]:
    """The proxy's /metrics as {name{labels}: value}."""
    host, port = proxy.admin_address
    req = urllib.request.Request(f"http://{host}:{port}/metrics",
                                 headers={"Authorization": f"Bearer {proxy.admin_token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05):
    """Polls predicate() until it returns a truthy value (returned) or the time is up (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def sessions(proxy) -> int:
    return int(metrics(proxy)["basalt_sessions"])


def wait_sessions(proxy, expected: int, timeout: float = 5.0) -> int:
    """Waits until the proxy's open-session count is `expected`; returns the last count."""
    last = [None]

    def check():
        last[0] = sessions(proxy)
        return last[0] == expected

    wait_for(check, timeout)
    return last[0]
