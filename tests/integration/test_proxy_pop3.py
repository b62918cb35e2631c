"""basalt-proxy in front of two real Dovecot shards: POP3 (RFC 1939, 2449, 2595, 5034)."""

from __future__ import annotations

import poplib
import ssl

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS, USERS
from wire import Conn, b64, client_tls, plain, wait_for, wait_sessions

LISTENERS = ("pop3", "pop3s")


@pytest.fixture(scope="module")
def proxy(workdir, slapd, shard_a, shard_b, certs, proxy_binary):
    text = bc.proxy_config(slapd, {"a": shard_a, "b": shard_b}, {p: bc.free_port() for p in LISTENERS}, certs,
                           shard_hosts=SHARD_HOSTS, proxy={"auth_failure_delay_ms": 300, "auth_failure_max_delay_ms": 300})
    p = bc.Proxy(workdir / "proxy-pop3", proxy_binary, text)
    p.start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def tls(certs) -> ssl.SSLContext:
    return client_tls(certs["ca"])


def welcome_subject(pop: poplib.POP3) -> str:
    count, _ = pop.stat()
    assert count >= 1
    _, lines, _ = pop.retr(1)
    return next(l.decode() for l in lines if l.lower().startswith(b"subject:"))


@pytest.mark.parametrize("uid", ["alice", "carol", "dave"])
def test_user_pass_reaches_the_users_shard(proxy, uid):
    pop = poplib.POP3(bc.LOOPBACK, proxy.port("pop3"))
    try:
        assert pop.user(uid).startswith(b"+OK")
        assert pop.pass_(USERS[uid]["password"]).startswith(b"+OK")
        assert welcome_subject(pop) == f"Subject: Welcome {uid} to shard {USERS[uid]['shard']}"
    finally:
        pop.quit()


def test_password_with_spaces_and_quotes(proxy):
    pop = poplib.POP3(bc.LOOPBACK, proxy.port("pop3"))
    try:
        pop.user("grace")
        assert pop.pass_(USERS["grace"]["password"]).startswith(b"+OK")
    finally:
        pop.quit()


def test_capa_before_login(proxy):
    c = Conn(proxy.port("pop3"))
    assert c.line().startswith("+OK ")
    c.send("CAPA\r\n")
    lines = [c.line()]
    while lines[-1] != ".":
        lines.append(c.line())
    assert lines[0].startswith("+OK")
    for cap in ("USER", "SASL PLAIN LOGIN", "STLS", "RESP-CODES", "AUTH-RESP-CODE"):
        assert cap in lines


def test_auth_plain_with_initial_response(proxy):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send("AUTH PLAIN " + plain("bob", "bob-secret") + "\r\n")
    assert c.line() == "+OK Logged in."
    c.send("STAT\r\n")
    assert c.line().startswith("+OK ")


def test_auth_plain_with_continuation_and_cancel(proxy):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send("AUTH PLAIN\r\n")
    assert c.line() == "+ "
    c.send("*\r\n")
    assert c.line() == "-ERR Authentication canceled."
    c.send("AUTH PLAIN\r\n")
    assert c.line() == "+ "
    c.send(plain("carol", "carol-secret") + "\r\n")
    assert c.line() == "+OK Logged in."


def test_auth_login_mechanism(proxy):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send("AUTH LOGIN\r\n")
    assert c.line() == "+ VXNlcm5hbWU6"
    c.send(b64("dave") + "\r\n")
    assert c.line() == "+ UGFzc3dvcmQ6"
    c.send(b64("dave-secret") + "\r\n")
    assert c.line() == "+OK Logged in."


def test_stls_then_login(proxy, tls):
    pop = poplib.POP3(bc.LOOPBACK, proxy.port("pop3"))
    try:
        assert pop.stls(context=tls).startswith(b"+OK")
        pop.user("alice")
        assert pop.pass_("alice-secret").startswith(b"+OK")
        assert welcome_subject(pop) == "Subject: Welcome alice to shard a"
    finally:
        pop.quit()


def test_implicit_tls(proxy, tls):
    pop = poplib.POP3_SSL(bc.LOOPBACK, proxy.port("pop3s"), context=tls)
    try:
        pop.user("carol")
        assert pop.pass_("carol-secret").startswith(b"+OK")
        assert welcome_subject(pop) == "Subject: Welcome carol to shard b"
    finally:
        pop.quit()


def test_wrong_password_and_unknown_user(proxy):
    for user, password in (("alice", "wrong"), ("nobody", "x")):
        c = Conn(proxy.port("pop3"))
        c.line()
        c.send(f"USER {user}\r\n")
        assert c.line() == "+OK"
        c.send(f"PASS {password}\r\n")
        assert c.line() == "-ERR [AUTH] Authentication failed."
        c.send("QUIT\r\n")
        assert c.line() == "+OK Logging out."
        assert c.closed()


@pytest.mark.parametrize("uid", ["erin", "frank", "nohost", "lost"])
def test_moving_disabled_or_unroutable_users_get_a_temporary_failure(proxy, uid):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send(f"AUTH PLAIN {plain(uid, USERS[uid]['password'])}\r\n")
    assert c.line().startswith("-ERR [SYS/TEMP] ")


def test_bad_commands(proxy):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send("PASS x\r\n")
    assert c.line() == "-ERR No user name given (USER first)."
    c.send("STAT\r\n")
    assert c.line() == "-ERR Unknown command or not valid before login."
    c.send("AUTH CRAM-MD5\r\n")
    assert c.line() == "-ERR Unsupported authentication mechanism."
    c.send("AUTH PLAIN !!!\r\n")
    assert c.line() == "-ERR Invalid base64 data in SASL response."
    c.send("NOOP\r\n")
    assert c.line().startswith("-ERR")
    assert c.line().startswith("-ERR Too many invalid commands")
    assert c.closed()


def test_overlong_line(proxy):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send("USER " + "x" * 9000 + "\r\n")
    assert c.line().startswith("-ERR ")
    c.send("USER alice\r\n")
    assert c.line() == "+OK"


def test_plaintext_after_stls_is_not_executed(proxy):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send("STLS\r\nUSER alice\r\n")
    assert c.line() == "+OK Begin TLS negotiation now."
    assert c.closed()


def test_client_address_is_forwarded_with_xclient(proxy, shard_b):
    c = Conn(proxy.port("pop3"), source="127.0.0.3")
    c.line()
    c.send("AUTH PLAIN " + plain("carol", "carol-secret") + "\r\n")
    assert c.line() == "+OK Logged in."
    c.send("QUIT\r\n")
    c.line()
    log = wait_for(lambda: [l for l in shard_b.log_text().splitlines()
                            if "pop3-login" in l and "user=<carol>" in l and "rip=127.0.0.3" in l])
    assert log, "shard b never logged carol's POP3 login from 127.0.0.3"


def test_retr_through_the_proxy_matches_the_shard(proxy, shard_a):
    direct = poplib.POP3(bc.LOOPBACK, shard_a.pop3_port)
    direct.user("bob")
    direct.pass_("bob-secret")
    expected = direct.retr(1)[1]
    direct.quit()
    via = poplib.POP3(bc.LOOPBACK, proxy.port("pop3"))
    via.user("bob")
    via.pass_("bob-secret")
    assert via.retr(1)[1] == expected
    assert via.uidl()[0].startswith(b"+OK")
    via.quit()


def test_stls_session_gets_its_quit_reply_and_forgets_the_user(proxy, tls):
    c = Conn(proxy.port("pop3"))
    c.line()
    c.send("USER alice\r\n")
    assert c.line() == "+OK"
    c.send("STLS\r\n")
    assert c.line() == "+OK Begin TLS negotiation now."
    c.starttls(tls)
    c.send("PASS alice-secret\r\n")
    assert c.line() == "-ERR No user name given (USER first)."
    c.send("QUIT\r\n")
    assert c.line() == "+OK Logging out."
    assert c.closed()


def test_no_session_is_left_behind(proxy):
    assert wait_sessions(proxy, 0) == 0
