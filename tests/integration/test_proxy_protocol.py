"""HAProxy PROXY protocol v1/v2 on basalt-proxy listeners: the real client address is used for
the plaintext policy, the limits, the logs and the address forwarded to the shard; only trusted
load balancers may send it."""

from __future__ import annotations

import socket
import struct

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS
from wire import Conn, client_tls, wait_for, wait_sessions


@pytest.fixture(scope="module")
def proxy(workdir, slapd, shard_a, shard_b, certs, proxy_binary):
    cfg = bc.proxy_config_dict(slapd, {"a": shard_a, "b": shard_b}, {"imap": bc.free_port()}, certs,
                               shard_hosts=SHARD_HOSTS,
                               proxy={"trusted_networks": ["192.0.2.0/24"], "trusted_load_balancers": ["127.0.0.1/32"],
                                      "auth_failure_delay_ms": 0})
    cfg["listener"] += [{"protocol": "imap", "address": f"127.0.0.1:{bc.free_port()}", "proxy_protocol": True},
                        {"protocol": "imaps", "address": f"127.0.0.1:{bc.free_port()}", "proxy_protocol": True}]
    p = bc.Proxy(workdir / "proxy-proxyproto", proxy_binary, bc.to_toml(cfg))
    p.start()
    p.pp_imap = p.listeners[1][2]
    p.pp_imaps = p.listeners[2][2]
    yield p
    p.stop()


def v1(src: str, sport: int = 40000) -> bytes:
    return f"PROXY TCP4 {src} 203.0.113.1 {sport} 143\r\n".encode()


def v2(src: str, sport: int = 40000) -> bytes:
    addresses = socket.inet_aton(src) + socket.inet_aton("203.0.113.1") + struct.pack("!HH", sport, 993)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def raw(port: int, source: str | None = None) -> socket.socket:
    return socket.create_connection((bc.LOOPBACK, port), timeout=10,
                                    source_address=(source, 0) if source else None)


def conn_after(sock: socket.socket) -> Conn:
    c = Conn.__new__(Conn)
    c.sock, c.timeout, c.buf = sock, 10.0, b""
    return c


def test_v1_client_address_decides_the_plaintext_policy_and_reaches_the_shard(proxy, shard_a):
    s = raw(proxy.pp_imap)
    s.sendall(v1("192.0.2.7", 41234) + b"a LOGIN alice alice-secret\r\n")  # header and command together
    c = conn_after(s)
    assert c.line().startswith("* OK [CAPABILITY ")
    assert c.until_tag("a")[-1].startswith("a OK [CAPABILITY ")  # 192.0.2.0/24 is trusted
    c.command("b", "LOGOUT")
    assert wait_for(lambda: "rip=192.0.2.7" in shard_a.log_text())
    assert wait_for(lambda: "client=192.0.2.7:41234" in proxy.log_text())  # logs are batched (100 ms)

    s = raw(proxy.pp_imap)
    s.sendall(v1("198.51.100.9"))
    c = conn_after(s)
    greeting = c.line()
    assert "LOGINDISABLED" in greeting  # not a trusted network: TLS first
    assert c.command("a", "LOGIN alice alice-secret")[-1].startswith("a NO [PRIVACYREQUIRED]")
    c.close()


def test_v2_header_before_the_tls_handshake(proxy, shard_b, certs):
    s = raw(proxy.pp_imaps)
    s.sendall(v2("198.51.100.23", 50505))
    c = conn_after(client_tls(certs["ca"]).wrap_socket(s, server_hostname="localhost"))
    assert c.line().startswith("* OK [CAPABILITY ")
    assert c.command("a", "LOGIN carol carol-secret")[-1].startswith("a OK [CAPABILITY ")
    c.command("b", "LOGOUT")
    assert wait_for(lambda: "rip=198.51.100.23" in shard_b.log_text())


def test_headers_from_untrusted_sources_are_refused(proxy):
    s = raw(proxy.pp_imap, source="127.0.0.2")  # not a trusted load balancer
    s.sendall(v1("192.0.2.7"))
    assert conn_after(s).closed()
    assert wait_for(lambda: "connection from untrusted 127.0.0.2" in proxy.log_text())


@pytest.mark.parametrize("garbage", [b"a LOGIN alice alice-secret\r\n", b"PROXY TCP4 nonsense\r\n",
                                     b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12])
def test_connections_without_a_valid_header_are_closed(proxy, garbage):
    s = raw(proxy.pp_imap)
    s.sendall(garbage)
    assert conn_after(s).closed()


def test_plain_listeners_do_not_accept_headers(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send(v1("192.0.2.7"))
    assert c.line().startswith("PROXY BAD ")  # an ordinary (bad) command here
    c.close()


def test_no_session_is_left_behind(proxy):
    s = raw(proxy.pp_imap)
    s.sendall(b"PROXY TCP4 ")  # half a header, then gone
    s.close()
    assert wait_sessions(proxy, 0) == 0
