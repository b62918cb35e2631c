"""basalt-proxy after login: passthrough shards, back-pressure towards slow readers, idle timeout."""

from __future__ import annotations

import imaplib
import json
import os
import socket
import time
import urllib.request

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS
from wire import Conn, client_tls, wait_for, wait_sessions


def shard_login_config(slapd, shard_a, shard_b, certs, login: str) -> str:
    """An IMAP proxy that logs in to the shards as `login` says (master or passthrough)."""
    cfg = bc.proxy_config_dict(slapd, {"a": shard_a, "b": shard_b}, {"imap": bc.free_port()}, certs,
                               shard_hosts=SHARD_HOSTS)
    for shard in cfg["shard"]:
        shard["login"] = login
        if login == "passthrough":
            del shard["master_user"], shard["master_password"]
    return bc.to_toml(cfg)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.fixture
def henry(slapd, shard_b):
    """A user whose shard password differs from the directory's: only a master login works."""
    slapd.add_user(dict(uid="henry", password="henry-ldap", mail_host="b.mail.test", status="active"))
    shard_b.add_user("henry", "henry-shard")
    yield "henry"
    slapd.delete_user("henry")


@pytest.mark.parametrize("login", ["master", "passthrough"])
def test_shard_login_mode(henry, login, make_proxy, slapd, shard_a, shard_b, certs):
    p = make_proxy(config=shard_login_config(slapd, shard_a, shard_b, certs, login))
    imap = imaplib.IMAP4(bc.LOOPBACK, p.port("imap"))
    assert imap.login("carol", "carol-secret")[0] == "OK"
    assert imap.select("Shard-B-Only")[0] == "OK"
    imap.logout()
    c = Conn(p.port("imap"))
    c.line()
    reply = c.command("a", "LOGIN henry henry-ldap")[-1]
    if login == "master":
        assert reply.startswith("a OK [CAPABILITY ")
    else:  # the shard got henry's own (directory) password, which it does not accept
        assert reply == "a NO [UNAVAILABLE] Mail server is temporarily unavailable, try again later."


BIG = b"Subject: backpressure\r\n\r\n" + (b"x" * 998 + b"\r\n") * (24 * 1024)  # 24 MB


def start_big_fetch(p, certs, protocol: str) -> Conn:
    """Logs alice in (IMAP or IMAPS), then asks for the 24 MB message with a small receive
    buffer and reads none of it."""
    c = Conn(p.port(protocol), timeout=30, tls=client_tls(certs["ca"]) if protocol == "imaps" else None)
    c.line()
    assert c.command("a", "LOGIN alice alice-secret")[-1].startswith("a OK")
    assert c.command("b", "SELECT INBOX")[-1].startswith("b OK")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.send("c UID SEARCH SUBJECT backpressure\r\n")
    uid = c.until_tag("c")[0].split()[-1]
    c.send(f"d UID FETCH {uid} BODY.PEEK[]\r\n")
    return c


def read_until_closed(c: Conn, limit: float = 60) -> bytes:
    data = bytearray(c.buf)
    deadline = time.monotonic() + limit
    c.sock.settimeout(10)
    while time.monotonic() < deadline:
        chunk = c.sock.recv(1 << 20)
        if not chunk:
            return bytes(data)
        data += chunk
    raise TimeoutError("the proxy did not close the connection")


@pytest.fixture(scope="module")
def big_message(shard_a):
    shard_a.deliver("alice", BIG)


@pytest.mark.parametrize("protocol", ["imap", "imaps"])
def test_a_slow_reader_does_not_make_the_proxy_buffer_without_bound(make_proxy, certs, big_message, protocol):
    p = make_proxy(("imap", "imaps"), limits={"relay_high_watermark": 262144})
    before = rss_kib(p.pid)
    c = start_big_fetch(p, certs, protocol)
    time.sleep(2.0)  # the shard pushes 24 MB; we read none of it
    grown = rss_kib(p.pid) - before
    assert grown < 8 * 1024, f"proxy RSS grew by {grown} KiB while the client was not reading"
    total = 0
    deadline = time.monotonic() + 60
    c.sock.settimeout(10)
    while total < len(BIG) and time.monotonic() < deadline:
        chunk = c.sock.recv(1 << 20)
        assert chunk
        total += len(chunk)
    assert total >= len(BIG)


@pytest.mark.parametrize("protocol", ["imap", "imaps"])
def test_a_kick_during_a_download_delivers_what_was_read_then_the_goodbye(make_proxy, certs, big_message,
                                                                          protocol):
    """What the relay holds for a client that is not reading (for TLS: records already
    encrypted) goes out before the goodbye, which still arrives intact, then the close."""
    p = make_proxy(("imap", "imaps"), limits={"relay_high_watermark": 262144})
    c = start_big_fetch(p, certs, protocol)
    time.sleep(1.0)
    host, port = p.admin_address
    req = urllib.request.Request(f"http://{host}:{port}/kick?user=alice", method="POST",
                                 headers={"Authorization": f"Bearer {p.admin_token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"user": "alice", "kicked": 1}
    data = read_until_closed(c)
    assert data.endswith(b"* BYE Disconnected by the administrator.\r\n")  # mid-literal: the relay parses nothing
    assert b"* 1 FETCH" in data or b" FETCH (UID " in data  # the download had begun
    assert len(data) < len(BIG)  # and was cut: nothing more was read from the shard
    assert wait_sessions(p, 0) == 0


def test_idle_timeout_after_login_closes_the_session(make_proxy):
    p = make_proxy(("imap",), limits={"idle_timeout_s": 1})
    c = Conn(p.port("imap"))
    c.line()
    assert c.command("a", "LOGIN bob bob-secret")[-1].startswith("a OK")
    assert c.command("b", "NOOP")[-1].startswith("b OK")
    start = time.monotonic()
    assert c.closed(timeout=5)
    assert 0.8 <= time.monotonic() - start < 3
    assert wait_sessions(p, 0) == 0
    assert wait_for(lambda: "reason=\"idle timeout\"" in p.log_text())  # logs are batched (100 ms)


def tls_shard_config(slapd, shard_a, shard_b, certs, ca) -> str:
    """An IMAP and POP3 proxy that talks TLS to the shards, trusting the CA certificate `ca`."""
    cfg = bc.proxy_config_dict(slapd, {"a": shard_a, "b": shard_b}, {"imap": bc.free_port(), "pop3": bc.free_port()},
                               certs, shard_hosts=SHARD_HOSTS)
    for shard, dovecot in zip(cfg["shard"], (shard_a, shard_b)):
        shard.update(tls=True, tls_ca=ca, imap=f"{bc.LOOPBACK}:{dovecot.imaps_port}",
                     pop3=f"{bc.LOOPBACK}:{dovecot.pop3s_port}")
    return bc.to_toml(cfg)


def test_tls_to_shards_with_certificate_verification(make_proxy, slapd, shard_a, shard_b, certs):
    p = make_proxy(config=tls_shard_config(slapd, shard_a, shard_b, certs, certs["ca"]))
    c = Conn(p.port("imap"))
    c.line()
    assert c.command("a", "LOGIN carol carol-secret")[-1].startswith("a OK [CAPABILITY ")
    assert c.command("b", "SELECT Shard-B-Only")[-1].startswith("b OK")
    pop = Conn(p.port("pop3"))
    pop.line()
    pop.send("USER alice\r\nPASS alice-secret\r\n")
    assert pop.line() == "+OK"
    assert pop.line() == "+OK Logged in."
    log = wait_for(lambda: [l for l in shard_b.log_text().splitlines()
                            if "imap-login: Info: Login: user=<carol>" in l and "TLS" in l])
    assert log, "shard b did not log a TLS login for carol"


def test_tls_to_a_shard_with_an_untrusted_certificate_is_refused(make_proxy, workdir, slapd, shard_a, shard_b,
                                                                 certs):
    other = bc.make_certs(workdir / "other-ca")
    p = make_proxy(config=tls_shard_config(slapd, shard_a, shard_b, certs, other["ca"]))
    c = Conn(p.port("imap"))
    c.line()
    assert c.command("a", "LOGIN carol carol-secret") == [
        "a NO [UNAVAILABLE] Mail server is temporarily unavailable, try again later."]
    assert wait_for(lambda: "certificate verify failed" in p.log_text())


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_incomplete_tls_record_from_a_logged_in_client_blocks_nobody(make_proxy, certs):
    """A record header whose body never comes: the relay waits for the socket, it does not spin
    (which would stall every session of the worker)."""
    p = make_proxy(("imap", "imaps"), proxy={"workers": 1})
    c = Conn(p.port("imaps"), tls=client_tls(certs["ca"]))
    c.line()
    assert c.command("a", "LOGIN alice alice-secret")[-1].startswith("a OK")
    os.write(c.sock.fileno(), b"\x17\x03\x03\x00\x40" + bytes(16))  # 64 bytes announced, 16 sent
    time.sleep(0.2)
    before = cpu_seconds(p.pid)
    other = Conn(p.port("imap"), timeout=5)
    other.line()
    assert other.command("b", "LOGIN bob bob-secret")[-1].startswith("b OK")
    assert other.command("n", "NOOP")[-1].startswith("n OK")
    time.sleep(1.0)
    used = cpu_seconds(p.pid) - before
    assert used < 0.5, f"the proxy used {used:.2f} s of CPU in 1.2 s with one client mid-record"
    other.command("z", "LOGOUT")
