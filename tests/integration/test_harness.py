"""The integration harness itself: slapd, Dovecot shards, certificates, the TOML writer."""

from __future__ import annotations

import poplib
import re
import socket
import ssl
import subprocess
import sys
import time
import tomllib

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS, SHARD_ONLY_MAILBOX, USERS, users_of


# ----------------------------------------------------------------------------- slapd

def test_service_account_reads_user_but_not_password(slapd):
    entry = slapd.find_user("dave", bind_dn=slapd.service_dn, password=slapd.service_password)
    assert entry is not None
    assert entry["dn"] == [slapd.user_dn("dave")]
    assert entry["mailHost"] == ["imap.b.mail.test"]
    assert entry["mailUserStatus"] == ["active"]
    assert "basaltMailUser" in entry["objectClass"]
    assert "userPassword" not in entry
    # Asking for it explicitly does not help either.
    entry = slapd.find_user("dave", attrs=["userPassword", "mailHost"],
                            bind_dn=slapd.service_dn, password=slapd.service_password)
    assert "userPassword" not in entry and entry["mailHost"] == ["imap.b.mail.test"]
    # The admin sees it (hashed).
    assert slapd.find_user("dave", attrs=["userPassword"])["userPassword"][0].startswith("{SSHA}")


def test_anonymous_cannot_read_people(slapd):
    assert slapd.find_user("alice", bind=False) is None


def test_status_and_missing_attributes(slapd):
    sees = dict(bind_dn=slapd.service_dn, password=slapd.service_password)
    assert slapd.find_user("erin", **sees)["mailUserStatus"] == ["moving"]
    assert slapd.find_user("frank", **sees)["mailUserStatus"] == ["disabled"]
    assert "mailUserStatus" not in slapd.find_user("bob", **sees)
    assert "mailHost" not in slapd.find_user("nohost", **sees)


def test_user_bind(slapd):
    assert slapd.can_bind(slapd.user_dn("alice"), USERS["alice"]["password"])
    assert slapd.can_bind(slapd.user_dn("grace"), USERS["grace"]["password"])
    assert not slapd.can_bind(slapd.user_dn("alice"), "wrong")
    assert not slapd.can_bind(slapd.user_dn("alice"), USERS["bob"]["password"])
    assert slapd.can_bind(slapd.service_dn, slapd.service_password)


def test_modify_status_and_password(slapd):
    dn = slapd.user_dn("bob")
    try:
        slapd.modify("bob", status="moving", password="new-bob")
        assert slapd.find_user("bob")["mailUserStatus"] == ["moving"]
        assert slapd.can_bind(dn, "new-bob")
        assert not slapd.can_bind(dn, USERS["bob"]["password"])
    finally:
        slapd.modify("bob", status=None, password=USERS["bob"]["password"])
    assert "mailUserStatus" not in slapd.find_user("bob")
    assert slapd.can_bind(dn, USERS["bob"]["password"])


def test_add_and_delete_user(slapd):
    user = dict(uid="temp(1)*", password="temp-pw", mail_host="b.mail.test", status="active")
    slapd.add_user(user)
    try:
        entry = slapd.find_user("temp(1)*", bind_dn=slapd.service_dn,
                                password=slapd.service_password)
        assert entry["mailHost"] == ["b.mail.test"]
        assert slapd.can_bind(slapd.user_dn("temp(1)*"), "temp-pw")
    finally:
        slapd.delete_user("temp(1)*")
    assert slapd.find_user("temp(1)*") is None


def test_pause_makes_searches_time_out(slapd):
    slapd.pause()
    try:
        # The port still accepts (the kernel completes the handshake) but nothing answers.
        assert bc.port_accepts(slapd.port)
        start = time.monotonic()
        with pytest.raises(bc.LdapTimeout):
            slapd.find_user("alice", timeout=1)
        assert time.monotonic() - start < 5
    finally:
        slapd.resume()
    assert slapd.find_user("alice", timeout=5) is not None


def test_restart_keeps_port_and_data(workdir):
    server = bc.Slapd(workdir / "slapd-restart", [dict(uid="zed", password="pw", mail_host="a")])
    try:
        server.start()
        port = server.port
        server.restart()
        assert server.port == port
        assert server.find_user("zed")["mailHost"] == ["a"]
    finally:
        server.stop()
    assert not server.running()
    assert not bc.port_accepts(port)


def test_many_users_load_quickly(workdir):
    start = time.monotonic()
    server = bc.Slapd(workdir / "slapd-many", bc.bench_users(10_000))
    try:
        server.start()
        elapsed = time.monotonic() - start
        assert server.find_user("user09999")["mailHost"] == ["b.mail.test"]
        assert elapsed < 20, f"10k users took {elapsed:.1f}s"
    finally:
        server.stop()


# ----------------------------------------------------------------------------- Dovecot

@pytest.mark.parametrize("name", ["a", "b"])
def test_own_and_master_login_see_the_right_mailbox(name, shard_a, shard_b):
    shard = {"a": shard_a, "b": shard_b}[name]
    other = SHARD_ONLY_MAILBOX["b" if name == "a" else "a"]
    for user in users_of(name):
        for conn in (shard.imap(user), shard.imap_as_master(user)):
            try:
                typ, boxes = conn.list()
                assert typ == "OK"
                listing = b"\n".join(boxes).decode()
                assert SHARD_ONLY_MAILBOX[name] in listing and other not in listing
                typ, count = conn.select("INBOX", readonly=True)
                assert typ == "OK" and int(count[0]) >= 1
            finally:
                conn.logout()


def test_dovecot_refuses_bad_logins(shard_a):
    conn = bc.imaplib.IMAP4(bc.LOOPBACK, shard_a.imap_port, timeout=10)
    try:
        with pytest.raises(bc.imaplib.IMAP4.error):
            conn.login("alice", "wrong")
        # A user of the other shard does not exist here, even through the master user.
        with pytest.raises(bc.imaplib.IMAP4.error):
            conn.authenticate("PLAIN", lambda _: f"carol\0{shard_a.master_user}\0"
                              f"{shard_a.master_password}".encode())
    finally:
        conn.shutdown()


def test_trusted_network_forwards_client_ip(shard_a):
    """What the proxy does: ID with x-originating-ip before a master login."""
    conn = bc.imaplib.IMAP4(bc.LOOPBACK, shard_a.imap_port, timeout=10)
    try:
        typ, _ = conn.xatom("ID", '("x-originating-ip" "192.0.2.7" "name" "harness")')
        assert typ == "OK"
        secret = f"alice\0{shard_a.master_user}\0{shard_a.master_password}".encode()
        assert conn.authenticate("PLAIN", lambda _: secret)[0] == "OK"
    finally:
        conn.logout()
    log = wait_for_log(shard_a, "rip=192.0.2.7")
    assert "Master user logging in as alice" in log
    assert re.search(r"Login: user=<alice>, method=PLAIN, rip=192\.0\.2\.7,", log), log


def wait_for_log(daemon, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = daemon.log_text()
        if needle in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_pop3_login(shard_b):
    pop = poplib.POP3(bc.LOOPBACK, shard_b.pop3_port, timeout=10)
    try:
        pop.user("carol")
        assert pop.pass_(USERS["carol"]["password"]).startswith(b"+OK")
        count, _ = pop.stat()
        assert count >= 1
    finally:
        pop.quit()


def test_deliver_puts_message_in_inbox(shard_b):
    def inbox_count() -> int:
        conn = shard_b.imap("carol")
        try:
            return int(conn.select("INBOX", readonly=True)[1][0])
        finally:
            conn.logout()

    before = inbox_count()
    shard_b.deliver("carol", bc.make_message("harness delivery", to="carol@example.org"))
    assert inbox_count() == before + 1
    conn = shard_b.imap("carol")
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.search(None, "SUBJECT", '"harness delivery"')
        assert typ == "OK" and data[0].split()
    finally:
        conn.logout()


def test_imaps_with_test_ca(shard_a, certs):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    for host in ("localhost", "127.0.0.1"):
        with socket.create_connection((bc.LOOPBACK, shard_a.imaps_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                assert tls.recv(100).startswith(b"* OK")


# ----------------------------------------------------------------------------- config writer

def test_proxy_config_renders_valid_toml(slapd, shard_a, shard_b, certs):
    text = bc.proxy_config(slapd, {"a": shard_a, "b": shard_b}, {"imap": 1143, "pop3s": 1995},
                           certs, shard_hosts=SHARD_HOSTS, admin_token="t0k",
                           proxy={"workers": 1}, directory={"cache_ttl_s": 0})
    cfg = tomllib.loads(text)
    assert cfg["proxy"] == {"workers": 1, "trusted_networks": ["127.0.0.0/8", "::1/128"],
                            "auth_failure_delay_ms": 2000, "auth_failure_max_delay_ms": 2000,
                            "drain_timeout_s": 1}
    assert cfg["listener"] == [{"protocol": "imap", "address": "127.0.0.1:1143"},
                               {"protocol": "pop3s", "address": "127.0.0.1:1995"}]
    assert cfg["admin"]["token"] == "t0k"
    assert cfg["tls"] == {"certificate": certs["cert"], "private_key": certs["key"]}
    assert cfg["directory"]["cache_ttl_s"] == 0
    ldap = cfg["directory"]["ldap"]
    assert ldap["uris"] == [slapd.uri] and ldap["bind_password"] == slapd.service_password
    assert ldap["user_filter"] == "(&(objectClass=inetOrgPerson)(uid=%u))"
    b = cfg["shard"][1]
    assert b["name"] == "b" and b["hosts"] == SHARD_HOSTS["b"]
    assert b["imap"] == f"127.0.0.1:{shard_b.imap_port}"
    assert b["master_user"] == "proxy" and b["master_password"] == shard_b.master_password


def test_toml_writer_escapes():
    data = {"a": 'q"\\\n\t\x01é', "n": 3, "b": False, "l": ["x", "y"], "t": {"k": "v"},
            "arr": [{"x": 1, "sub": {"y": 2}}, {"x": 2}]}
    assert tomllib.loads(bc.to_toml(data)) == data


def test_dovecot_kill_and_restart(workdir):
    shard = bc.Dovecot(workdir / "shard-restart", "r", {"zoe": "zoe-pw"})
    try:
        shard.start()
        shard.deliver("zoe", bc.make_message("before the crash"))
        shard.kill()
        assert not bc.port_accepts(shard.imap_port)
        shard.start()
        conn = shard.imap("zoe")
        try:
            assert int(conn.select("INBOX")[1][0]) == 1
        finally:
            conn.logout()
    finally:
        shard.stop()
    assert not bc.port_accepts(shard.imap_port)


STAND_IN_PROXY = r'''#!/usr/bin/python3
import signal, socket, sys, time, tomllib
cfg = tomllib.load(open(sys.argv[sys.argv.index("-c") + 1], "rb"))
socks = []
for addr in [l["address"] for l in cfg["listener"]] + [cfg["admin"]["address"]]:
    host, port = addr.rsplit(":", 1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port))); s.listen(); socks.append(s)
signal.signal(signal.SIGHUP, lambda *a: print("reloaded", file=sys.stderr, flush=True))
print("ready", file=sys.stderr, flush=True)
while True:
    time.sleep(1)
'''


def test_proxy_wrapper_with_a_stand_in(workdir, slapd, shard_a, shard_b, certs):
    """Proxy starts the binary with -c proxy.toml, waits for every port, reloads, stops."""
    binary = workdir / "stand-in-proxy"
    binary.write_text(STAND_IN_PROXY)
    binary.chmod(0o755)
    text = bc.proxy_config(slapd, {"a": shard_a, "b": shard_b},
                           {"imap": bc.free_port(), "pop3s": bc.free_port()}, certs)
    proxy = bc.Proxy(workdir / "proxy-stand-in", binary, text)
    try:
        proxy.start()
        assert bc.port_accepts(proxy.port("imap")) and bc.port_accepts(proxy.port("pop3s"))
        assert bc.port_accepts(proxy.admin_address[1]) and proxy.admin_token
        assert (workdir / "proxy-stand-in" / "proxy.toml").read_text() == text
        proxy.reload()
        assert "reloaded" in wait_for_log(proxy, "reloaded")
    finally:
        proxy.stop()
    assert not proxy.running() and not bc.port_accepts(proxy.port("imap"))


def test_proxy_failing_to_start_reports_its_log(workdir, slapd, shard_a, shard_b):
    binary = workdir / "broken-proxy"
    binary.write_text("#!/bin/sh\necho 'config error: no shards' >&2\nexit 3\n")
    binary.chmod(0o755)
    text = bc.proxy_config(slapd, {"a": shard_a}, {"imap": bc.free_port()})
    with pytest.raises(bc.ClusterError, match="config error: no shards"):
        bc.Proxy(workdir / "proxy-broken", binary, text).start()


def test_daemons_die_with_a_killed_parent(workdir):
    """Even a SIGKILLed test run leaves no slapd or Dovecot behind (PR_SET_PDEATHSIG)."""
    script = f"""
import sys, time
sys.path.insert(0, {str(bc.REPO_ROOT / "tools" / "cluster")!r})
import basalt_cluster as bc
s = bc.Slapd({str(workdir / "orphan-slapd")!r}, [])
d = bc.Dovecot({str(workdir / "orphan-dovecot")!r}, "o", {{"u": "p"}})
s.start(); d.start()
print(s.pid, d.pid, s.port, d.imap_port, flush=True)
time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        slapd_pid, dovecot_pid, ldap_port, imap_port = map(int, parent.stdout.readline().split())
        assert bc.port_accepts(ldap_port) and bc.port_accepts(imap_port)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (bc._group_alive(slapd_pid)
                                           or bc._group_alive(dovecot_pid)):
        time.sleep(0.05)
    assert not bc._group_alive(slapd_pid) and not bc._group_alive(dovecot_pid)
