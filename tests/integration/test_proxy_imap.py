"""basalt-proxy in front of two real Dovecot shards, authenticating against a real slapd: IMAP."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import os
import signal
import socket
import ssl
import threading
import time

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS, SHARD_ONLY_MAILBOX, USERS
from wire import Conn, b64, client_tls, metrics, plain, wait_for, wait_sessions

LISTENERS = ("imap", "imaps", "pop3", "pop3s")


@pytest.fixture(scope="module")
def proxy(workdir, slapd, shard_a, shard_b, certs, proxy_binary):
    text = bc.proxy_config(slapd, {"a": shard_a, "b": shard_b}, {p: bc.free_port() for p in LISTENERS}, certs,
                           shard_hosts=SHARD_HOSTS, proxy={"auth_failure_delay_ms": 300, "auth_failure_max_delay_ms": 300})
    p = bc.Proxy(workdir / "proxy-imap", proxy_binary, text)
    p.start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def tls(certs) -> ssl.SSLContext:
    return client_tls(certs["ca"])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def mailboxes(imap: imaplib.IMAP4) -> set[str]:
    typ, data = imap.list()
    assert typ == "OK"
    return {line.decode().rsplit(" ", 1)[-1].strip('"') for line in data}


@pytest.mark.parametrize("uid", ["alice", "bob", "carol", "dave", "grace"])
def test_each_user_lands_on_the_shard_holding_their_mail(proxy, uid):
    user = USERS[uid]
    imap = imaplib.IMAP4(bc.LOOPBACK, proxy.port("imap"))
    try:
        typ, _ = imap.login(uid, user["password"])
        assert typ == "OK"
        boxes = mailboxes(imap)
        assert SHARD_ONLY_MAILBOX[user["shard"]] in boxes
        other = "b" if user["shard"] == "a" else "a"
        assert SHARD_ONLY_MAILBOX[other] not in boxes
        typ, data = imap.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) >= 1
    finally:
        imap.logout()


def test_greeting_and_capability_before_login(proxy):
    c = Conn(proxy.port("imap"))
    greeting = c.line()
    assert greeting.startswith("* OK [CAPABILITY IMAP4rev1 ")
    for cap in ("SASL-IR", "ID", "LITERAL+", "STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN"):
        assert f" {cap}" in greeting
    lines = c.command("a1", "CAPABILITY")
    assert lines[0].startswith("* CAPABILITY IMAP4rev1 ")
    assert lines[-1].startswith("a1 OK ")
    assert c.command("a2", "NOOP") == ["a2 OK NOOP completed."]
    lines = c.command("a3", 'ID ("name" "pytest" "version" "1")')
    assert lines == ['* ID ("name" "Basalt")', "a3 OK ID completed."]
    assert c.command("a4", "ID NIL")[-1] == "a4 OK ID completed."
    assert c.command("a5", "LOGOUT") == ["* BYE Logging out", "a5 OK Logout completed."]
    assert c.closed()


def test_login_returns_the_shards_post_login_capabilities(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    ok = c.command("a", "LOGIN alice alice-secret")[-1]
    assert ok.startswith("a OK [CAPABILITY IMAP4rev1 ")
    assert " IDLE" in ok and "STARTTLS" not in ok and "AUTH=" not in ok
    lines = c.command("b", "SELECT Shard-A-Only")
    assert lines[-1].startswith("b OK ")
    assert c.command("c", "LOGOUT")[-1].startswith("c OK")


def test_login_with_synchronizing_and_nonsynchronizing_literals(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a LOGIN {5}\r\n")
    assert c.line().startswith("+ ")
    c.send("carol {12+}\r\ncarol-secret\r\n")
    assert c.until_tag("a")[-1].startswith("a OK [CAPABILITY ")
    assert "Shard-B-Only" in "\n".join(c.command("b", 'LIST "" "*"'))


def test_authenticate_plain_with_initial_response(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    assert c.command("a", "AUTHENTICATE PLAIN " + plain("bob", "bob-secret"))[-1].startswith("a OK [CAPABILITY ")


def test_authenticate_plain_with_continuation(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line() == "+ "
    c.send(plain("dave", "dave-secret") + "\r\n")
    assert c.until_tag("a")[-1].startswith("a OK [CAPABILITY ")
    assert "Shard-B-Only" in "\n".join(c.command("b", 'LIST "" "*"'))


def test_authenticate_login_mechanism(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a AUTHENTICATE LOGIN\r\n")
    assert c.line() == "+ VXNlcm5hbWU6"
    c.send(b64("alice") + "\r\n")
    assert c.line() == "+ UGFzc3dvcmQ6"
    c.send(b64("alice-secret") + "\r\n")
    assert c.until_tag("a")[-1].startswith("a OK [CAPABILITY ")


def test_authenticate_plain_with_own_authzid_is_accepted(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    assert c.command("a", "AUTHENTICATE PLAIN " + plain("alice", "alice-secret", authzid="alice"))[-1].startswith("a OK")


def test_authenticate_cancel_and_bad_base64(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line() == "+ "
    c.send("*\r\n")
    assert c.line() == "a BAD Authentication canceled."
    assert c.command("b", "AUTHENTICATE PLAIN !!notbase64!!") == ["b BAD Invalid base64 data in SASL response."]
    assert c.command("c", "AUTHENTICATE CRAM-MD5") == ["c NO Unsupported authentication mechanism."]
    assert c.command("d", "NOOP") == ["d OK NOOP completed."]


def test_authzid_for_another_user_is_refused(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    lines = c.command("a", "AUTHENTICATE PLAIN " + plain("alice", "alice-secret", authzid="bob"), timeout=10)
    assert lines == ["a NO [AUTHORIZATIONFAILED] Authorization failed."]


def test_starttls_then_login(proxy, tls):
    c = Conn(proxy.port("imap"))
    c.line()
    assert c.command("a", "STARTTLS") == ["a OK Begin TLS negotiation now."]
    c.starttls(tls)
    caps = c.command("b", "CAPABILITY")[0]
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps
    assert c.command("c", "STARTTLS") == ["c BAD TLS is already active."]
    assert c.command("d", "LOGIN carol carol-secret")[-1].startswith("d OK [CAPABILITY ")


def test_implicit_tls_with_imaplib(proxy, tls):
    imap = imaplib.IMAP4_SSL(bc.LOOPBACK, proxy.port("imaps"), ssl_context=tls)
    try:
        assert imap.login("dave", "dave-secret")[0] == "OK"
        assert SHARD_ONLY_MAILBOX["b"] in mailboxes(imap)
    finally:
        imap.logout()


def test_starttls_with_imaplib(proxy, tls):
    imap = imaplib.IMAP4(bc.LOOPBACK, proxy.port("imap"))
    try:
        assert imap.starttls(ssl_context=tls)[0] == "OK"
        assert imap.login("alice", "alice-secret")[0] == "OK"
        assert SHARD_ONLY_MAILBOX["a"] in mailboxes(imap)
    finally:
        imap.logout()


@pytest.mark.parametrize("protocol", ["imap", "imaps"])
def test_commands_pipelined_behind_login_reach_the_shard(proxy, tls, protocol):
    """Also over TLS, where they may sit decrypted in the TLS bufferevent or still inside the SSL
    when the relay takes the connection over."""
    c = Conn(proxy.port(protocol), tls=tls if protocol == "imaps" else None)
    c.line()
    c.send("a LOGIN alice alice-secret\r\nb SELECT INBOX\r\n" + "".join(f"n{i} NOOP\r\n" for i in range(200)) +
           "c LOGOUT\r\n")
    assert c.until_tag("a")[-1].startswith("a OK [CAPABILITY ")
    assert c.until_tag("b")[-1].startswith("b OK [READ-WRITE]")
    assert c.until_tag("c")[-1].startswith("c OK")
    assert c.closed()


def test_plaintext_after_starttls_is_not_executed(proxy):
    """STARTTLS command injection (CVE-2011-0411 class): bytes pipelined behind STARTTLS are refused."""
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a STARTTLS\r\nb LOGIN alice alice-secret\r\n")
    assert c.line() == "a OK Begin TLS negotiation now."
    assert c.closed()


def test_client_address_is_forwarded_to_the_shard(proxy, shard_a):
    c = Conn(proxy.port("imap"), source="127.0.0.2")
    c.line()
    assert c.command("a", "LOGIN bob bob-secret")[-1].startswith("a OK")
    c.command("b", "LOGOUT")
    log = wait_for(lambda: [l for l in shard_a.log_text().splitlines()
                            if "user=<bob>" in l and "rip=127.0.0.2" in l])
    assert log, "shard a never logged bob's login from 127.0.0.2"


@pytest.mark.parametrize("client", ["plain", "imaps", "starttls"])
def test_ten_megabyte_message_is_byte_identical_through_the_proxy(proxy, shard_b, tls, client):
    body = os.urandom(7 * 1024 * 1024)
    encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
    message = (b"From: big@example.org\r\nTo: carol@example.org\r\nSubject: ten megabytes\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded)
    assert len(message) > 9 * 1024 * 1024
    shard_b.deliver("carol", message)

    def fetch(imap: imaplib.IMAP4) -> bytes:
        imap.select("INBOX", readonly=True)
        typ, data = imap.search(None, "SUBJECT", '"ten megabytes"')
        assert typ == "OK" and data[0]
        num = data[0].split()[-1]
        typ, data = imap.fetch(num, "(BODY.PEEK[])")
        assert typ == "OK"
        return data[0][1]

    direct = shard_b.imap("carol")
    try:
        expected = fetch(direct)
    finally:
        direct.logout()
    if client == "imaps":
        via = imaplib.IMAP4_SSL(bc.LOOPBACK, proxy.port("imaps"), ssl_context=tls)
    else:
        via = imaplib.IMAP4(bc.LOOPBACK, proxy.port("imap"))
        if client == "starttls":
            via.starttls(ssl_context=tls)
    try:
        via.login("carol", "carol-secret")
        got = fetch(via)
    finally:
        via.logout()
    assert expected.endswith(message)  # LMTP prepended Return-Path/Received
    assert len(got) == len(expected)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_session_log_line_names_user_shard_bytes_and_reason_but_never_the_password(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.command("a", "LOGIN grace {%d+}\r\n%s" % (len(USERS["grace"]["password"]), USERS["grace"]["password"]))
    c.command("b", "LOGOUT")
    c.closed()
    ends = wait_for(lambda: [l for l in proxy.log_text().splitlines() if "session end" in l and "user=grace" in l])
    assert ends, proxy.log_text()[-2000:]
    line = ends[-1]
    for field in ("proto=imap", "client=127.0.0.1:", "shard=a", "in=", "out=", "duration_ms=", "reason="):
        assert field in line
    log = proxy.log_text()
    for user in USERS.values():
        assert user["password"] not in log


def test_starttls_sessions_get_their_last_reply_before_the_close(proxy, tls):
    c = Conn(proxy.port("imap"))
    c.line()
    c.command("a", "STARTTLS")
    c.starttls(tls)
    assert c.command("b", "LOGOUT") == ["* BYE Logging out", "b OK Logout completed."]
    assert c.closed()


def test_starttls_sessions_keep_the_output_cap(proxy, tls):
    """A client that pipelines commands after STARTTLS but never reads must not grow the proxy."""
    c = Conn(proxy.port("imap"))
    c.line()
    c.command("a", "STARTTLS")
    c.starttls(tls)
    before = rss_kib(proxy.pid)
    c.sock.setblocking(False)
    burst = b"x ID NIL\r\n" * 2000
    sent = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            sent += c.sock.send(burst)
        except (ssl.SSLWantWriteError, BlockingIOError):
            time.sleep(0.05)
    grown = rss_kib(proxy.pid) - before
    assert sent > 1_000_000, "the proxy stopped reading too early to prove anything"
    assert grown < 16 * 1024, f"proxy RSS grew by {grown} KiB for a client that does not read"


def test_commands_pipelined_before_a_half_close_are_all_answered(proxy):
    c = Conn(proxy.port("imap"))
    c.line()
    c.send("a LOGIN alice alice-secret\r\nb SELECT INBOX\r\nc LOGOUT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.until_tag("a")[-1].startswith("a OK [CAPABILITY ")
    assert c.until_tag("b")[-1].startswith("b OK ")
    assert c.until_tag("c")[-1].startswith("c OK")
    assert c.closed()


def test_an_append_sent_just_before_the_client_closes_reaches_the_shard(proxy, shard_a):
    body = b"Subject: sent then closed\r\n\r\n" + b"y" * (4 * 1024 * 1024) + b"\r\n"
    c = Conn(proxy.port("imap"))
    c.line()
    assert c.command("a", "LOGIN bob bob-secret")[-1].startswith("a OK")
    c.send(b"b APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\nc LOGOUT\r\n")
    c.close()
    def stored():
        imap = shard_a.imap("bob")
        try:
            imap.select("INBOX", readonly=True)
            typ, data = imap.search(None, "SUBJECT", '"sent then closed"')
            return typ == "OK" and data[0]
        finally:
            imap.logout()
    assert wait_for(stored, timeout=10), "the APPEND was lost when the client closed"


def test_out_of_range_id_values_from_a_trusted_proxy_are_ignored(proxy, shard_a):
    c = Conn(proxy.port("imap"))
    c.line()
    c.command("a", 'ID ("x-proxy-ttl" "-2147483648" "x-originating-port" "99999999" '
                   '"x-originating-ip" "10.1.2.3:77")')
    assert c.command("b", "LOGIN alice alice-secret")[-1].startswith("b OK [CAPABILITY ")
    c.command("c", "LOGOUT")
    assert proxy.running()
    assert "x-originating-ip=10.1.2.3:77" not in shard_a.log_text()


def test_no_session_is_left_behind(proxy):
    assert wait_sessions(proxy, 0) == 0


# ------------------------------------------------------------------ early shard login

LOGINS = 30


def established_to(port: int) -> int:
    """TCP connections in ESTABLISHED state whose remote end is 127.0.0.1:port (IPv4)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if r[3] == "01" and int(r[2].split(":")[1], 16) == port)


@pytest.mark.parametrize("early", [True, False])
def test_early_shard_login(make_proxy, shard_a, early):
    """The shard login overlaps the bind; a wrong password closes the early shard session."""
    proxy = make_proxy(listeners=("imap",), log={"level": "debug"},
                       proxy={"early_shard_login": early, "auth_failure_delay_ms": 200,
                              "auth_failure_max_delay_ms": 200, "warm_shard_connections": 0})
    shard_port = shard_a.imap_port
    baseline = established_to(shard_port)
    # Right passwords: the shard login starts as soon as the directory has found the user
    # (whether it also finishes before the bind does is a race), or only after the verdict.
    for _ in range(LOGINS):
        imap = imaplib.IMAP4(bc.LOOPBACK, proxy.port("imap"), timeout=10)
        typ, _ = imap.login("alice", USERS["alice"]["password"])
        assert typ == "OK"
        typ, data = imap.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) >= 1
        imap.logout()
    wait_for(lambda: proxy.log_text().count("user=alice shard=a in=") == LOGINS, timeout=5)
    early_sessions = {line.split("]")[1] for line in proxy.log_text().splitlines()
                      if "early shard login: command sent" in line}
    if early:
        assert len(early_sessions) >= 1, "no login reached the shard before the directory's verdict"
    else:
        assert not early_sessions
    # A wrong password: the client hears only AUTHENTICATIONFAILED, and the shard session that
    # was opened (and, early, logged in) for it is closed, while the client stays connected.
    c = Conn(proxy.port("imap"))
    c.line()
    reply = c.command("w1", f"LOGIN alice wrong-{USERS['alice']['password']}")
    assert reply == ["w1 NO [AUTHENTICATIONFAILED] Authentication failed."]
    assert wait_for(lambda: established_to(shard_port) == baseline, timeout=5)
    assert c.command("w2", "NOOP") == ["w2 OK NOOP completed."]
    c.command("w3", "LOGOUT")


def test_logins_take_warm_shard_connections(make_proxy, shard_a):
    """After a shard's first login the worker keeps greeted connections to it; the next login
    takes one (the shard still gets the client's ID and the login) and it is replaced."""
    proxy = make_proxy(listeners=("imap",), proxy={"workers": 1, "warm_shard_connections": 2})
    baseline = established_to(shard_a.imap_port)

    def login_and_select():
        imap = imaplib.IMAP4(bc.LOOPBACK, proxy.port("imap"), timeout=10)
        assert imap.login("alice", USERS["alice"]["password"])[0] == "OK"
        typ, data = imap.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) >= 1
        imap.logout()

    login_and_select()  # cold: connects itself, then the pool fills
    assert wait_for(lambda: established_to(shard_a.imap_port) == baseline + 2, timeout=5)
    for _ in range(3):
        login_and_select()
    m = metrics(proxy)
    assert m['basalt_shard_warm_connections_total{result="missed"}'] == 1
    assert m['basalt_shard_warm_connections_total{result="used"}'] == 3
    assert m['basalt_shard_warm_connections_total{result="failed"}'] == 0
    assert m['basalt_logins_total{result="ok"}'] == 4
    assert wait_for(lambda: established_to(shard_a.imap_port) == baseline + 2, timeout=5)


def test_logins_right_after_a_shard_reload_succeed(make_proxy, shard_a):
    """Dovecot's login processes from before a reload keep their clients (our warm connections)
    but can no longer complete a login ("Internal error"): each such login is repeated on a
    fresh connection, so the client never sees it."""
    proxy = make_proxy(listeners=("imap",), proxy={"workers": 1, "warm_shard_connections": 4})
    baseline = established_to(shard_a.imap_port)

    def login() -> str:
        c = Conn(proxy.port("imap"))
        c.line()
        reply = c.command("a", f"LOGIN alice {USERS['alice']['password']}")[-1]
        c.command("b", "LOGOUT")
        return reply

    assert login().startswith("a OK ")
    assert wait_for(lambda: established_to(shard_a.imap_port) == baseline + 4, timeout=5)
    shard_a.signal(signal.SIGHUP)
    time.sleep(1.5)
    replies = [login() for _ in range(6)]
    assert all(r.startswith("a OK ") for r in replies), replies
    assert metrics(proxy)["basalt_backend_errors_total"] == 0


def test_warm_connections_still_carry_each_clients_address(make_proxy, shard_a, shard_b):
    """The ID (IMAP) and XCLIENT (POP3) with the real client address go out per login, also on
    a connection that was opened and greeted before the client came."""
    proxy = make_proxy(listeners=("imap", "pop3"), proxy={"workers": 1})
    for n, source in enumerate(("127.0.0.5", "127.0.0.6")):
        c = Conn(proxy.port("imap"), source=source)
        c.line()
        assert c.command("a", "LOGIN bob bob-secret")[-1].startswith("a OK")
        c.command("b", "LOGOUT")
        p = Conn(proxy.port("pop3"), source=source)
        p.line()
        p.send("AUTH PLAIN " + plain("carol", "carol-secret") + "\r\n")
        assert p.line() == "+OK Logged in."
        p.send("QUIT\r\n")
        p.line()
        if n == 0:  # the pools fill after the first logins
            time.sleep(0.5)
    m = metrics(proxy)
    assert m['basalt_shard_warm_connections_total{result="used"}'] == 2
    assert wait_for(lambda: [l for l in shard_a.log_text().splitlines() if "user=<bob>" in l and "rip=127.0.0.6" in l])
    assert wait_for(lambda: [l for l in shard_b.log_text().splitlines()
                             if "pop3-login" in l and "user=<carol>" in l and "rip=127.0.0.6" in l])

class FakeImapShard:
    """A shard that greets, accepts any ID and AUTHENTICATE PLAIN and answers other commands
    OK. doom_idle() marks the connections open now to fail at their first command: closed
    unanswered (the shard restarted behind a warm connection) or, with refuse, the login
    answered NO (Dovecot's old login process after a reload: "Internal error")."""

    GREETING = b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID AUTH=PLAIN] fake shard ready\r\n"

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.sock = socket.create_server((bc.LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[FakeImapShard.Connection] = []
        self.accepted = 0
        self.logins: list[str] = []
        self.doomed_used = 0
        threading.Thread(target=self.accept_loop, daemon=True).start()

    class Connection:
        doomed = False
        used = False

    def doom_idle(self) -> int:
        with self.lock:
            for c in self.open:
                c.doomed = True
            return len(self.open)

    def accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            state = FakeImapShard.Connection()
            with self.lock:
                self.accepted += 1
                self.open.append(state)
            threading.Thread(target=self.serve, args=(conn, state), daemon=True).start()

    def serve(self, conn: socket.socket, state: Connection) -> None:
        with conn, conn.makefile("rb") as f:
            conn.sendall(self.GREETING)
            for raw in f:
                with self.lock:
                    self.open = [c for c in self.open if c is not state]
                    if state.doomed and not state.used:
                        self.doomed_used += 1
                    state.used = True
                tag, _, rest = raw.decode().rstrip("\r\n").partition(" ")
                command = rest.split(" ")[0].upper()
                if state.doomed and not self.refuse:
                    return
                if state.doomed and command == "AUTHENTICATE":
                    conn.sendall(f"{tag} NO [UNAVAILABLE] Internal error occurred.\r\n".encode())
                    return
                if command == "APPEND" and rest.endswith("}"):  # "APPEND {n}": read n bytes slowly, answer their digest
                    size = int(rest[rest.rindex("{") + 1:-1])
                    conn.sendall(b"+ go ahead\r\n")
                    digest = hashlib.sha256()
                    while size > 0:
                        chunk = f.read1(min(size, 65536))
                        if not chunk:
                            return
                        digest.update(chunk)
                        size -= len(chunk)
                        time.sleep(0.002)  # slower than the client: the proxy must hold back
                    f.readline()  # the CRLF after the literal
                    conn.sendall(f"{tag} OK {digest.hexdigest()}\r\n".encode())
                    continue
                if command == "AUTHENTICATE":
                    authzid = base64.b64decode(rest.split(" ")[2]).split(b"\0")[0].decode()
                    with self.lock:
                        self.logins.append(authzid)
                    conn.sendall(f"{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n".encode())
                elif command == "LOGOUT":
                    conn.sendall(f"* BYE bye\r\n{tag} OK done\r\n".encode())
                    return
                else:
                    conn.sendall(f"{tag} OK done\r\n".encode())

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("refuse", [False, True], ids=["closed", "refused"])
@pytest.mark.parametrize("early", [True, False])
def test_a_warm_connection_broken_by_the_shard_is_replaced_before_the_client_notices(make_proxy, early, refuse):
    fake = FakeImapShard(refuse)
    try:
        proxy = make_proxy(listeners=("imap",),
                           proxy={"workers": 1, "warm_shard_connections": 1, "early_shard_login": early},
                           shard=[{"name": "a", "hosts": ["a.mail.test"], "imap": f"{bc.LOOPBACK}:{fake.port}",
                                   "login": "master", "master_user": "proxy", "master_password": "pw"}])

        def login() -> list[str]:
            c = Conn(proxy.port("imap"))
            c.line()
            reply = c.command("a", f"LOGIN alice {USERS['alice']['password']}")
            c.command("b", "LOGOUT")
            return reply

        assert login()[-1].startswith("a OK ")
        assert wait_for(lambda: len(fake.open) == 1, timeout=5)  # the warm one, greeted and idle
        assert fake.doom_idle() == 1
        assert login()[-1].startswith("a OK ")
        assert fake.doomed_used == 1  # the doomed one was taken, and failed
        assert fake.logins == ["alice", "alice"]
        m = metrics(proxy)
        assert m['basalt_shard_warm_connections_total{result="used"}'] >= 1
        assert m['basalt_shard_warm_connections_total{result="failed"}'] >= 1
        assert m["basalt_backend_errors_total"] == 0
        assert m['basalt_logins_total{result="ok"}'] == 2
    finally:
        fake.close()


@pytest.mark.parametrize("protocol", ["imap", "imaps"])
def test_an_upload_to_a_slow_shard_arrives_intact(make_proxy, certs, protocol):
    """8 MB sent faster than the shard reads: held back by the relay (for TLS, decrypted in
    256 KiB pieces with plaintext left inside the SSL), never reordered or lost."""
    fake = FakeImapShard()
    try:
        proxy = make_proxy(listeners=("imap", "imaps"), proxy={"workers": 1},
                           shard=[{"name": "a", "hosts": ["a.mail.test"], "imap": f"{bc.LOOPBACK}:{fake.port}",
                                   "login": "master", "master_user": "proxy", "master_password": "pw"}])
        c = Conn(proxy.port(protocol), tls=client_tls(certs["ca"]) if protocol == "imaps" else None, timeout=60)
        c.line()
        assert c.command("a", f"LOGIN alice {USERS['alice']['password']}")[-1].startswith("a OK ")
        data = os.urandom(8 * 1024 * 1024)
        c.send(f"x APPEND {{{len(data)}}}\r\n")
        assert c.line().startswith("+ ")
        c.send(data + b"\r\n")
        assert c.until_tag("x")[-1] == f"x OK {hashlib.sha256(data).hexdigest()}"
        c.command("z", "LOGOUT")
    finally:
        fake.close()
