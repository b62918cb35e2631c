"""basalt-proxy under bad input and broken dependencies: every failure gets a clear, protocol-
correct answer, nothing hangs, nothing crashes, no session is left behind."""

from __future__ import annotations

import socket
import time

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS, USERS
from wire import Conn, client_tls, plain, wait_for, wait_sessions

LISTENERS = ("imap", "imaps", "pop3")
DELAY_S = 0.3
LDAP_TIMEOUT_S = 1.0


def start_proxy(workdir, name, slapd, shard_a, shard_b, certs, proxy_binary, **overrides):
    overrides.setdefault("proxy", {"auth_failure_delay_ms": int(DELAY_S * 1000),
                                   "auth_failure_max_delay_ms": int(DELAY_S * 1000)})  # no growth here
    overrides.setdefault("directory", {"cache_ttl_s": 0, "ldap": {"operation_timeout_ms": int(LDAP_TIMEOUT_S * 1000),
                                                                 "connect_timeout_ms": 500,
                                                                 "retry_interval_ms": 200}})
    text = bc.proxy_config(slapd, {"a": shard_a, "b": shard_b}, {p: bc.free_port() for p in LISTENERS}, certs,
                           shard_hosts=SHARD_HOSTS, **overrides)
    p = bc.Proxy(workdir / name, proxy_binary, text)
    p.start()
    return p


@pytest.fixture(scope="module")
def proxy(workdir, slapd, shard_a, shard_b, certs, proxy_binary):
    p = start_proxy(workdir, "proxy-failures", slapd, shard_a, shard_b, certs, proxy_binary)
    yield p
    p.stop()


def login(proxy, user: str, password: str, timeout: float = 10.0) -> tuple[str, float]:
    """LOGIN with literals (any bytes allowed); returns the tagged reply and the seconds it took."""
    c = Conn(proxy.port("imap"), timeout=timeout)
    try:
        c.line()
        u, p = user.encode("utf-8", "surrogateescape"), password.encode()
        start = time.monotonic()
        c.send(b"a LOGIN {%d}\r\n" % len(u))  # synchronizing: the 10 KB name is over the LITERAL+ limit
        continuation = c.line()
        if not continuation.startswith("+ "):
            return continuation, time.monotonic() - start
        c.send(b"%s {%d+}\r\n%s\r\n" % (u, len(p), p))
        reply = c.until_tag("a", timeout)[-1]
        return reply, time.monotonic() - start
    finally:
        c.close()


def assert_proxy_alive(proxy):
    reply, _ = login(proxy, "alice", "alice-secret")
    assert reply.startswith("a OK [CAPABILITY "), reply


def test_wrong_password_fails_after_the_delay_and_the_session_goes_on(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    start = time.monotonic()
    assert c.command("a", "LOGIN alice wrong-password") == ["a NO [AUTHENTICATIONFAILED] Authentication failed."]
    assert time.monotonic() - start >= DELAY_S
    assert c.command("b", "LOGIN alice alice-secret")[-1].startswith("b OK [CAPABILITY ")


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(proxy):
    reply, elapsed = login(proxy, "nobody-here", "whatever")
    assert reply == "a NO [AUTHENTICATIONFAILED] Authentication failed."
    assert elapsed >= DELAY_S


def test_empty_password_never_authenticates(proxy):
    reply, _ = login(proxy, "alice", "")
    assert reply == "a NO [AUTHENTICATIONFAILED] Authentication failed."


INJECTIONS = ["*", ")(uid=*", "*)(|(uid=*", "alice)(uid=*", "\\", "alice\\2a", "al*", "alice\0", "\0", "alice\r",
              "x" * 10240, "alice)(mailHost=*", "ALICE\x80"]


@pytest.mark.parametrize("name", INJECTIONS, ids=[f"name{i}" for i in range(len(INJECTIONS))])
@pytest.mark.parametrize("password", ["alice-secret", "*"])
def test_ldap_injection_in_the_user_name_never_authenticates(proxy, name, password):
    reply, _ = login(proxy, name, password)
    assert reply == "a NO [AUTHENTICATIONFAILED] Authentication failed."


def test_injection_attempts_did_not_crash_anything(proxy, slapd):
    assert proxy.running()
    assert slapd.running()
    assert_proxy_alive(proxy)


@pytest.mark.parametrize("uid", ["erin", "frank"])
def test_moving_or_disabled_users_get_a_temporary_failure(proxy, uid):
    reply, _ = login(proxy, uid, USERS[uid]["password"])
    assert reply == "a NO [UNAVAILABLE] Account is temporarily unavailable, try again later."


@pytest.mark.parametrize("uid", ["nohost", "lost"])
def test_users_without_a_known_shard_get_a_temporary_failure(proxy, uid):
    reply, _ = login(proxy, uid, USERS[uid]["password"])
    assert reply == "a NO [UNAVAILABLE] Mail server is temporarily unavailable, try again later."


def test_plaintext_login_is_refused_before_tls_from_untrusted_networks(workdir, slapd, shard_a, shard_b, certs,
                                                                     proxy_binary):
    p = start_proxy(workdir, "proxy-untrusted", slapd, shard_a, shard_b, certs, proxy_binary,
                    proxy={"trusted_networks": [], "auth_failure_delay_ms": 0})
    try:
        c = Conn(p.port("imap"))
        greeting = c.line()
        assert "LOGINDISABLED" in greeting and "STARTTLS" in greeting and "AUTH=PLAIN" not in greeting
        privacy = "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
        assert c.command("a", "LOGIN alice alice-secret") == ["a " + privacy]
        assert c.command("b", "AUTHENTICATE PLAIN " + plain("alice", "alice-secret")) == ["b " + privacy]
        assert c.command("c", "STARTTLS") == ["c OK Begin TLS negotiation now."]
        c.starttls(client_tls(certs["ca"]))
        assert "AUTH=PLAIN" in c.command("d", "CAPABILITY")[0]
        assert c.command("e", "LOGIN alice alice-secret")[-1].startswith("e OK [CAPABILITY ")

        pop = Conn(p.port("pop3"))
        pop.line()
        pop.send("USER alice\r\n")
        assert pop.line() == "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
        pop.send("STLS\r\n")
        assert pop.line() == "+OK Begin TLS negotiation now."
        pop.starttls(client_tls(certs["ca"]))
        pop.send("USER alice\r\n")
        assert pop.line() == "+OK"
        pop.send("PASS alice-secret\r\n")
        assert pop.line() == "+OK Logged in."
    finally:
        p.stop()


def test_ldap_down_answers_unavailable_within_the_timeout_then_recovers(proxy, slapd):
    slapd.stop()
    try:
        reply, elapsed = login(proxy, "alice", "alice-secret")
        assert reply == "a NO [UNAVAILABLE] Authentication service is temporarily unavailable, try again later."
        assert elapsed < LDAP_TIMEOUT_S + 1.0
        c = Conn(proxy.port("pop3"))
        c.line()
        c.send("AUTH PLAIN " + plain("carol", "carol-secret") + "\r\n")
        assert c.line().startswith("-ERR [SYS/TEMP] ")
    finally:
        slapd.start()
    ok = wait_for(lambda: login(proxy, "alice", "alice-secret")[0].startswith("a OK"), timeout=10, interval=0.3)
    assert ok, "logins did not recover after slapd came back"


def test_ldap_hung_answers_unavailable_within_the_timeout_then_recovers(workdir, slapd, shard_a, shard_b, certs,
                                                                      proxy_binary):
    # A fresh proxy, so that no earlier outage's fail-fast window decides the answer.
    # One worker: its LDAP connections are the ones the first login opened.
    p = start_proxy(workdir, "proxy-ldap-hung", slapd, shard_a, shard_b, certs, proxy_binary,
                    proxy={"workers": 1, "auth_failure_delay_ms": 0})
    try:
        assert login(p, "alice", "alice-secret")[0].startswith("a OK")  # connections are up
        slapd.pause()
        try:
            reply, elapsed = login(p, "bob", "bob-secret")
            assert reply == "a NO [UNAVAILABLE] Authentication service is temporarily unavailable, try again later."
            assert LDAP_TIMEOUT_S * 0.8 <= elapsed < LDAP_TIMEOUT_S + 1.5
        finally:
            slapd.resume()
        ok = wait_for(lambda: login(p, "bob", "bob-secret")[0].startswith("a OK"), timeout=10, interval=0.3)
        assert ok, "logins did not recover after slapd resumed"
    finally:
        p.stop()


def test_shard_down_answers_unavailable_and_the_other_shard_keeps_working(proxy, shard_a):
    shard_a.stop()
    try:
        reply, elapsed = login(proxy, "alice", "alice-secret")
        assert reply == "a NO [UNAVAILABLE] Mail server is temporarily unavailable, try again later."
        assert elapsed < 5
        reply, _ = login(proxy, "carol", "carol-secret")
        assert reply.startswith("a OK [CAPABILITY ")
    finally:
        shard_a.start()
    assert_proxy_alive(proxy)


def test_overlong_line_gets_bad_and_the_connection_goes_on(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a1 NOOP " + "x" * 9000 + "\r\n")
    assert c.line().startswith("a1 BAD ")
    assert c.command("a2", "NOOP") == ["a2 OK NOOP completed."]


def test_oversized_synchronizing_literal_gets_bad_without_continuation(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a1 LOGIN {1000000}\r\n")
    reply = c.line()
    assert reply.startswith("a1 BAD "), reply
    assert c.command("a2", "NOOP") == ["a2 OK NOOP completed."]


def test_oversized_nonsynchronizing_literal_gets_bye_and_close(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a1 LOGIN {1000000+}\r\n" + "x" * 1000)
    assert c.line().startswith("* BYE ")
    assert c.closed()


def test_too_many_bad_commands_end_the_session(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    for i in range(4):
        assert c.command(f"t{i}", "SELECT INBOX") == [f"t{i} BAD Command not permitted before authentication."]
    c.send("t4 FOO\r\n")
    assert c.line() == "t4 BAD Command not permitted before authentication."
    assert c.line() == "* BYE Too many invalid commands."
    assert c.closed()


def test_malformed_commands_get_bad(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("\r\n")
    assert c.line().startswith("* BAD ")
    assert c.command("a", "LOGIN onlyuser") == ["a BAD LOGIN expects a user name and a password."]
    c.send('b LOGIN "unterminated\r\n')
    assert c.line().startswith("b BAD ")
    assert c.command("c", "NOOP") == ["c OK NOOP completed."]


def test_preauth_timeout_says_bye(workdir, slapd, shard_a, shard_b, certs, proxy_binary):
    p = start_proxy(workdir, "proxy-preauth-timeout", slapd, shard_a, shard_b, certs, proxy_binary,
                    limits={"preauth_timeout_s": 1})
    try:
        c = Conn(p.port("imap"))
        c.line()
        start = time.monotonic()
        assert c.line(timeout=5) == "* BYE Disconnected for inactivity."
        assert c.closed()
        assert 0.8 <= time.monotonic() - start < 3
        assert wait_sessions(p, 0) == 0
    finally:
        p.stop()


def test_disconnect_mid_literal_or_mid_tls_handshake_leaves_no_session(proxy):
    assert wait_sessions(proxy, 0) == 0
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a LOGIN {100}\r\n")
    assert c.line().startswith("+ ")
    c.send("only part of it")
    handshakes = []
    for _ in range(3):
        s = socket.create_connection((bc.LOOPBACK, proxy.port("imaps")))
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20)  # a truncated ClientHello
        handshakes.append(s)
    silent = socket.create_connection((bc.LOOPBACK, proxy.port("imaps")))  # never says anything
    assert wait_sessions(proxy, 5) == 5
    c.close()
    for s in handshakes + [silent]:
        s.close()
    assert wait_sessions(proxy, 0) == 0


def test_route_given_as_a_shard_host_and_port(proxy, slapd, shard_b):
    slapd.modify("dave", mail_host=f"127.0.0.1:{shard_b.imap_port}")
    try:
        reply, _ = login(proxy, "dave", "dave-secret")
        assert reply.startswith("a OK [CAPABILITY ")
        slapd.modify("dave", mail_host="127.0.0.1:1")  # an address no shard has
        reply, _ = login(proxy, "dave", "dave-secret")
        assert reply == "a NO [UNAVAILABLE] Mail server is temporarily unavailable, try again later."
    finally:
        slapd.modify("dave", mail_host="imap.b.mail.test")


def test_auth_cache_rides_out_an_ldap_outage_and_a_changed_password_wins(workdir, slapd, shard_a, shard_b, certs,
                                                                         proxy_binary):
    p = start_proxy(workdir, "proxy-auth-cache", slapd, shard_a, shard_b, certs, proxy_binary,
                    auth_cache={"ttl_s": 60, "iterations": 1000})
    unavailable = "a NO [UNAVAILABLE] Authentication service is temporarily unavailable, try again later."
    try:
        assert login(p, "alice", "alice-secret")[0].startswith("a OK")
        time.sleep(0.3)  # the remembered hash is computed on the pool
        slapd.stop()
        try:
            assert login(p, "alice", "alice-secret")[0].startswith("a OK [CAPABILITY ")
            assert login(p, "alice", "wrong-secret")[0] == unavailable  # cannot tell: not a "wrong password"
            assert login(p, "bob", "bob-secret")[0] == unavailable      # never logged in: nothing cached
        finally:
            slapd.start()
        assert wait_for(lambda: "accepted from the auth cache" in p.log_text())  # logs are batched (100 ms)
        assert "alice-secret" not in p.log_text()
        slapd.modify("alice", password="alice-new-secret")
        try:
            assert wait_for(lambda: login(p, "alice", "alice-secret")[0].startswith("a NO [AUTHENTICATIONFAILED]"),
                            timeout=10, interval=0.3)
            slapd.stop()
            try:  # the directory's answer erased the entry: the old password no longer works
                assert login(p, "alice", "alice-secret")[0] == unavailable
            finally:
                slapd.start()
        finally:
            slapd.modify("alice", password="alice-secret")
    finally:
        p.stop()


def test_a_failed_login_before_a_half_close_is_still_answered(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a LOGIN alice wrong\r\nb NOOP\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.line() == "a NO [AUTHENTICATIONFAILED] Authentication failed."
    assert c.line() == "b OK NOOP completed."
    assert c.closed()


def test_no_session_is_left_behind(proxy):
    assert wait_sessions(proxy, 0) == 0
