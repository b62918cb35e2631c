"""basalt-store's POP3 server (RFC 1939, 2449, 5034) end to end: a real basalt-store with mail
delivered by LMTP, read back with Python's poplib, raw sockets (pipelining, bad input, SASL
continuations, XCLIENT), fetchmail in UIDL keep mode, curl, and through basalt-proxy."""

from __future__ import annotations

import base64
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import basalt_cluster as bc

SENDER = "s@example.net"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Store(bc.Store):
    def __init__(self, workdir: Path, binary: Path, **kwargs) -> None:
        super().__init__(workdir, binary, services=("lmtp", "pop3"), masters={"proxy": "pw"},
                         store_keys="io_threads = 2\n", **kwargs)

    def deliver(self, user: str, msg: bytes) -> None:
        c = self.lmtp()
        assert c.sendmail(SENDER, [user], msg) == {}
        c.quit()

    def stored(self, user: str, uid: int) -> bytes:
        return self.cli("cat", user, str(uid))

    def pop(self, user: str | None = None, password: str | None = None) -> poplib.POP3:
        p = poplib.POP3(bc.LOOPBACK, self.port("pop3"), timeout=30)
        if user is not None:
            p.user(user)
            p.pass_(password)
        return p

    def raw(self) -> "Raw":
        return Raw(self.port("pop3"))


class Raw:
    """A POP3 connection on a plain socket: exact bytes, pipelining, bad input."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((bc.LOOPBACK, port), timeout=20)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def line(self) -> str:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(self.buf)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def multiline(self) -> bytes:
        """The body of a multi-line response, still dot-stuffed, up to (not including) '.'."""
        while b"\r\n.\r\n" not in self.buf and not self.buf.startswith(b".\r\n"):
            if not self._fill():
                raise EOFError(self.buf[:200])
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return b""
        body, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return body + b"\r\n"

    def cmd(self, line: str) -> str:
        self.send(line + "\r\n")
        return self.line()

    def login(self, user: str, password: str) -> None:
        assert self.cmd(f"USER {user}").startswith("+OK")
        assert self.cmd(f"PASS {password}") == "+OK Logged in."

    def closed(self) -> bool:
        try:
            while self._fill():
                pass
        except OSError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def store(make_store):
    return make_store(Store)


def three_messages(store: Store) -> list[bytes]:
    msgs = [bc.make_message("first", body="one\n"),
            bc.make_message("dots", body=".starts with a dot\n..two\n.\nend\n"),
            bc.make_message("third", body="".join(f"line {i}\n" for i in range(1, 11)))]
    for m in msgs:
        store.deliver("alice", m)
    return [store.stored("alice", uid) for uid in (1, 2, 3)]


def pop_bytes(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


# ---------------------------------------------------------------- capabilities and login


def test_greeting_and_capa(store):
    p = store.pop()
    assert p.getwelcome() == b"+OK [XCLIENT] basalt-store ready."  # 127.0.0.1 is a trusted peer
    caps = p.capa()
    for cap in ("USER", "UIDL", "TOP", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert cap in caps, cap
    assert caps["SASL"] == ["PLAIN"]
    assert caps["IMPLEMENTATION"] == ["basalt-store"]
    assert "STLS" not in caps  # no [tls] configured
    p.user("alice")
    p.pass_("a")
    caps = p.capa()
    assert "USER" not in caps and "SASL" not in caps and "UIDL" in caps
    p.quit()


def test_user_pass_and_mailbox_listing(store):
    stored = three_messages(store)
    p = store.pop("alice", "a")
    assert p.stat() == (3, sum(len(m) for m in stored))
    resp, lines, _ = p.list()
    assert resp.startswith(b"+OK")
    assert lines == [f"{i} {len(m)}".encode() for i, m in enumerate(stored, 1)]
    assert p.list(2) == f"+OK 2 {len(stored[1])}".encode()
    _, uidls, _ = p.uidl()
    assert [u.split()[0] for u in uidls] == [b"1", b"2", b"3"]
    ids = [u.split()[1].decode() for u in uidls]
    assert all(re.fullmatch(r"[0-9a-f]{8}\.0000000[123]", i) for i in ids), ids
    assert len(set(i.split(".")[0] for i in ids)) == 1  # one UIDVALIDITY
    assert p.uidl(3) == f"+OK 3 {ids[2]}".encode()
    assert p.noop().startswith(b"+OK")
    p.quit()


def test_retr_is_byte_identical_and_dot_stuffed_on_the_wire(store):
    stored = three_messages(store)
    p = store.pop("alice", "a")
    for i, m in enumerate(stored, 1):
        resp, lines, octets = p.retr(i)
        assert resp == f"+OK {len(m)} octets".encode()
        assert pop_bytes(lines) == m
    p.quit()
    r = store.raw()
    r.login("alice", "a")
    assert r.cmd("RETR 2").startswith("+OK")
    body = r.multiline()
    assert b"\r\n..starts with a dot\r\n...two\r\n..\r\nend\r\n" in body
    assert body.replace(b"\r\n..", b"\r\n.") == stored[1]
    assert r.cmd("QUIT").startswith("+OK")
    r.close()


def test_big_message_streams_intact(store):
    body = "".join(f"{'.' if i % 5 == 0 else ''}line {i:07d} " + "z" * 60 + "\n" for i in range(70000))
    msg = bc.make_message("big", body=body)
    assert len(msg) > 5_000_000
    store.deliver("alice", msg)
    stored = store.stored("alice", 1)
    p = store.pop("alice", "a")
    resp, lines, _ = p.retr(1)
    assert pop_bytes(lines) == stored
    p.quit()


def test_uidl_is_stable_across_sessions_and_restarts(store):
    three_messages(store)
    p = store.pop("alice", "a")
    before = p.uidl()[1]
    p.quit()
    store.stop()
    store.start()
    p = store.pop("alice", "a")
    assert p.uidl()[1] == before
    p.quit()


def test_top_from_the_header_cache_reads_no_spool_bytes(store):
    stored = three_messages(store)
    r = store.raw()
    # A trusted peer names the client with XCLIENT; the log uses that address.
    assert r.cmd("XCLIENT ADDR=192.0.2.77 PORT=4242 SESSION=t1 TTL=5") == "+OK"
    assert r.cmd("AUTH PLAIN " + b64("\0alice\0a")) == "+OK Logged in."
    for i, m in enumerate(stored, 1):
        assert r.cmd(f"TOP {i} 0") == "+OK"
        header = m[:m.index(b"\r\n\r\n") + 4]
        assert r.multiline().replace(b"\r\n..", b"\r\n.") == header
    assert r.cmd("QUIT").startswith("+OK")
    line = store.close_line("ip=192.0.2.77:4242 ")
    assert "user=alice" in line and "spool_reads=0 spool_bytes=0" in line and "reason=quit" in line, line


def test_top_with_lines_reads_the_body(store):
    stored = three_messages(store)
    p = store.pop("alice", "a")
    m = stored[2]
    head, body = m.split(b"\r\n\r\n", 1)
    _, lines, _ = p.top(3, 3)
    assert pop_bytes(lines) == head + b"\r\n\r\n" + b"line 1\r\nline 2\r\nline 3\r\n"
    _, lines, _ = p.top(3, 1000)
    assert pop_bytes(lines) == m
    _, lines, _ = p.top(2, 2)  # dot-stuffed body lines come back unstuffed
    assert pop_bytes(lines).endswith(b"\r\n\r\n.starts with a dot\r\n..two\r\n")
    p.quit()


# ---------------------------------------------------------------- DELE, RSET, QUIT


def test_dele_and_rset(store):
    stored = three_messages(store)
    p = store.pop("alice", "a")
    assert p.dele(1).startswith(b"+OK")
    assert p.stat() == (2, len(stored[1]) + len(stored[2]))
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.dele(1)
    assert [line.split()[0] for line in p.list()[1]] == [b"2", b"3"]
    assert p.rset().startswith(b"+OK")
    assert p.stat() == (3, sum(len(m) for m in stored))
    p.quit()
    p = store.pop("alice", "a")
    assert p.stat()[0] == 3
    p.quit()


def test_dele_then_quit_expunges(store):
    stored = three_messages(store)
    p = store.pop("alice", "a")
    ids = p.uidl()[1]
    p.dele(2)
    assert p.quit().startswith(b"+OK")
    p = store.pop("alice", "a")
    assert p.stat() == (2, len(stored[0]) + len(stored[2]))
    assert [i.split()[1] for i in p.uidl()[1]] == [ids[0].split()[1], ids[2].split()[1]]
    assert pop_bytes(p.retr(2)[1]) == stored[2]
    p.quit()
    with pytest.raises(bc.ClusterError):
        store.stored("alice", 2)  # the blob is gone too


def test_dele_without_quit_keeps_the_message(store):
    three_messages(store)
    r = store.raw()
    r.login("alice", "a")
    assert r.cmd("DELE 1").startswith("+OK")
    r.close()  # dropped: no UPDATE state
    time.sleep(0.3)
    p = store.pop("alice", "a")
    assert p.stat()[0] == 3
    p.quit()


def test_session_sees_the_maildrop_as_at_login(store):
    three_messages(store)
    p = store.pop("alice", "a")
    store.deliver("alice", bc.make_message("late"))
    assert p.stat()[0] == 3
    p.dele(1)
    p.quit()
    p = store.pop("alice", "a")
    assert p.stat()[0] == 3  # 2 old + the late one
    p.quit()


def test_two_sessions_of_one_user(store):
    three_messages(store)
    a = store.pop("alice", "a")
    b = store.pop("alice", "a")
    a.dele(1)
    b.dele(1)
    b.dele(2)
    assert a.quit().startswith(b"+OK")
    assert b.quit().startswith(b"+OK")  # UID 1 already gone: skipped
    p = store.pop("alice", "a")
    assert p.stat()[0] == 1
    p.quit()


# ---------------------------------------------------------------- authentication


def test_auth_plain_initial_response_continuation_and_cancel(store):
    three_messages(store)
    r = store.raw()
    assert r.cmd("AUTH") == "+OK"
    assert r.multiline() == b"PLAIN\r\n"
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("*") == "-ERR Authentication canceled."
    assert r.cmd("AUTH LOGIN") == "-ERR Unsupported authentication mechanism."
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("not base64!").startswith("-ERR")
    assert r.cmd("AUTH plain") == "+ "
    assert r.cmd(b64("\0alice\0a")) == "+OK Logged in."
    assert r.cmd("STAT").startswith("+OK 3 ")
    assert r.cmd("AUTH PLAIN") == "-ERR Already logged in."
    r.close()
    r = store.raw()
    assert r.cmd("AUTH PLAIN " + b64("alice\0alice\0a")) == "+OK Logged in."  # authzid = authcid
    r.close()


def test_failed_logins_are_delayed_and_limited(store):
    r = store.raw()
    for user, password in (("alice", "wrong"), ("nobody", "x")):
        assert r.cmd(f"USER {user}") == "+OK"
        start = time.monotonic()
        assert r.cmd(f"PASS {password}") == "-ERR [AUTH] Authentication failed."
        assert time.monotonic() - start >= 0.9
    assert r.cmd("AUTH PLAIN " + b64("\0alice\0nope")) == "-ERR [AUTH] Authentication failed."
    assert r.line() == "-ERR Too many authentication failures."
    assert r.closed()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        store.pop("alice", "wrong")


def test_login_verdicts(store):
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[AUTH\] Account disabled"):
        store.pop("dave", "d")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[SYS/TEMP\] Mailbox is being moved"):
        store.pop("erin", "e")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[SYS/TEMP\] Mailbox is not on this server"):
        store.pop("carol", "c")
    r = store.raw()
    assert r.cmd("PASS x") == "-ERR No user name given (USER first)."
    r.close()


def test_master_user_login(store):
    three_messages(store)
    r = store.raw()
    assert r.cmd("AUTH PLAIN " + b64("alice\0proxy\0pw")) == "+OK Logged in."
    assert r.cmd("STAT").startswith("+OK 3 ")
    r.close()
    r = store.raw()
    assert r.cmd("AUTH PLAIN " + b64("alice\0proxy\0bad")) == "-ERR [AUTH] Authentication failed."
    r.close()


def test_untrusted_peer_gets_no_xclient_no_plaintext_no_master(make_store):
    s = make_store(Store, trusted="10.99.0.0/16")
    r = s.raw()
    assert r.greeting == "+OK basalt-store ready."
    assert r.cmd("XCLIENT ADDR=192.0.2.1 PORT=1") == "-ERR XCLIENT is only accepted from trusted proxies."
    assert r.cmd("USER alice") == "+OK"
    assert r.cmd("PASS a") == "-ERR [AUTH] Plaintext authentication disallowed without TLS."
    r.close()
    r = s.raw()
    assert r.cmd("AUTH PLAIN " + b64("alice\0proxy\0pw")).startswith("-ERR [AUTH] ")
    r.close()


# ---------------------------------------------------------------- bad input and pipelining


def test_bad_input_gets_errors_and_the_session_goes_on(store):
    three_messages(store)
    r = store.raw()
    assert r.cmd("STAT") == "-ERR Not logged in."
    assert r.cmd("FROB") == "-ERR Unknown command."
    r.login("alice", "a")
    cases = {
        "RETR": "-ERR RETR expects one message number.",
        "RETR 0": "-ERR There's no message 0.",
        "RETR 4": "-ERR There's no message 4.",
        "RETR 99999999999999999999": "-ERR Invalid message number.",
        "RETR -1": "-ERR Invalid message number.",
        "RETR x": "-ERR Invalid message number.",
        "RETR 1 2": "-ERR RETR expects one message number.",
        "TOP 1": "-ERR TOP expects a message number and a line count.",
        "TOP 1 x": "-ERR Invalid line count.",
        "TOP 9 0": "-ERR There's no message 9.",
        "LIST 4": "-ERR There's no message 4.",
        "UIDL 0": "-ERR There's no message 0.",
        "DELE 7": "-ERR There's no message 7.",
        "STAT 1": "-ERR STAT takes no arguments.",
    }
    for line, reply in cases.items():
        assert r.cmd(line) == reply, line
    assert r.cmd("USER bob") == "-ERR Already logged in."
    assert r.cmd("NOOP") == "+OK"
    r.close()


def test_overlong_and_malformed_lines(store):
    r = store.raw()
    assert r.cmd("USER " + "x" * 3000).startswith("-ERR")
    assert r.cmd("NO\x01OP").startswith("-ERR")
    assert r.cmd("") .startswith("-ERR")
    assert r.cmd("USER  two-spaces").startswith("-ERR")
    assert r.cmd("USER a\x00b").startswith("-ERR")
    assert r.cmd("CAPA").startswith("+OK")
    r.multiline()
    # No LF at all for 4 x the line limit: fatal.
    r.send("X" * 9000)
    assert r.line().startswith("-ERR")
    assert r.closed()


def test_too_many_bad_commands_close_the_session(store):
    r = store.raw()
    for _ in range(9):
        assert r.cmd("FROB") == "-ERR Unknown command."
    assert r.cmd("FROB") == "-ERR Unknown command."
    assert r.line() == "-ERR Too many invalid commands."
    assert r.closed()


def test_pipelined_commands(store):
    stored = three_messages(store)
    r = store.raw()
    r.send("USER alice\r\nPASS a\r\nSTAT\r\nLIST\r\nRETR 1\r\nTOP 3 0\r\nDELE 3\r\nUIDL 3\r\nNOOP\r\nQUIT\r\n")
    assert r.line() == "+OK"
    assert r.line() == "+OK Logged in."
    assert r.line() == f"+OK 3 {sum(len(m) for m in stored)}"
    assert r.line().startswith("+OK")
    assert r.multiline() == b"".join(f"{i} {len(m)}\r\n".encode() for i, m in enumerate(stored, 1))
    assert r.line() == f"+OK {len(stored[0])} octets"
    assert r.multiline() == stored[0]
    assert r.line() == "+OK"
    r.multiline()
    assert r.line() == "+OK Marked to be deleted."
    assert r.line() == "-ERR Message 3 is deleted."
    assert r.line() == "+OK"
    assert r.line() == "+OK Logging out, messages deleted."
    assert r.closed()
    p = store.pop("alice", "a")
    assert p.stat()[0] == 2
    p.quit()


# ---------------------------------------------------------------- real clients


def run_fetchmail(port: int, home: Path, out: Path) -> subprocess.CompletedProcess:
    rc = home / ".fetchmailrc"
    rc.write_text(f'poll {bc.LOOPBACK} port {port} protocol pop3 uidl\n'
                  f'  username alice password a is alice here\n'
                  f'  keep sslproto "" mda "cat >> {out}"\n')
    rc.chmod(0o600)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "FETCHMAILHOME": str(home)}
    return subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v",
                           "-i", str(home / "fetchids")], env=env, capture_output=True, timeout=60)


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_fetchmail_uidl_keep_mode(store, tmp_path, proxy_binary, via):
    three_messages(store)
    port = store.port("pop3")
    if via == "proxy":  # UIDs must be the same through basalt-proxy (master login)
        proxy, port = bc.store_proxy(tmp_path / "proxy", proxy_binary, store, "pop3", {"alice": "a"})
        proxy.start()
    home = tmp_path / "fm"
    home.mkdir()
    out = tmp_path / "fetched.mbox"
    try:
        fetchmail_keep_mode(store, port, home, out)
    finally:
        if via == "proxy":
            proxy.stop()


def fetchmail_keep_mode(store: Store, port: int, home: Path, out: Path) -> None:
    r = run_fetchmail(port, home, out)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert out.read_bytes().count(b"Subject: ") == 3
    r = run_fetchmail(port, home, out)
    assert r.returncode == 1, r.stdout.decode() + r.stderr.decode()  # 1: no new mail
    assert out.read_bytes().count(b"Subject: ") == 3
    store.deliver("alice", bc.make_message("fourth"))
    r = run_fetchmail(port, home, out)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    text = out.read_bytes()
    assert text.count(b"Subject: ") == 4 and text.count(b"Subject: fourth") == 1
    p = store.pop("alice", "a")
    assert p.stat()[0] == 4  # keep: nothing deleted
    p.quit()


def test_curl_retrieves_and_lists(store):
    stored = three_messages(store)
    url = f"pop3://{bc.LOOPBACK}:{store.port('pop3')}/"
    r = subprocess.run(["curl", "-sS", "--max-time", "30", url + "2", "-u", "alice:a"], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == stored[1]
    r = subprocess.run(["curl", "-sS", "--max-time", "30", url, "-u", "alice:a"], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"".join(f"{i} {len(m)}\r\n".encode() for i, m in enumerate(stored, 1))


def test_through_basalt_proxy(store, tmp_path, proxy_binary):
    stored = three_messages(store)
    proxy, pop3_port = bc.store_proxy(tmp_path, proxy_binary, store, "pop3", {"alice": "alice-secret"})
    proxy.start()
    try:
        p = poplib.POP3(bc.LOOPBACK, pop3_port, timeout=30)
        client_port = p.sock.getsockname()[1]
        p.user("alice")
        p.pass_("alice-secret")
        assert p.stat()[0] == 3
        assert pop_bytes(p.retr(2)[1]) == stored[1]
        p.quit()
        # The store logged the proxy's client (XCLIENT), not the proxy's own connection.
        line = store.close_line(f"ip={bc.LOOPBACK}:{client_port} ")
        assert "user=alice" in line
    finally:
        proxy.stop()


def test_login_deadline_and_connection_limit(make_store):
    s = make_store(Store, service_keys={"pop3": "login_timeout_s = 1\nmax_connections = 2\n"})
    r = s.raw()
    start = time.monotonic()
    reply = ""
    while not reply.startswith("-ERR"):  # busy, but never logging in: the deadline still ends it
        reply = r.cmd("CAPA")
        if reply.startswith("+OK"):
            r.multiline()
            time.sleep(0.2)
    assert reply == "-ERR Disconnected: no login in time."
    assert 0.9 <= time.monotonic() - start < 5
    assert r.closed()
    a, b = s.raw(), s.raw()
    c = s.raw()
    assert c.greeting == "-ERR [SYS/TEMP] Too many connections, try again later."
    assert c.closed()
    a.close()
    b.close()


@pytest.fixture
def tls_store(make_tls_store):
    return make_tls_store(Store)


def test_stls(tls_store):
    stored = three_messages(tls_store)
    p = tls_store.pop()
    assert "STLS" in p.capa()
    p.user("alice")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext authentication disallowed"):
        p.pass_("a")
    p.stls(ssl.create_default_context(cafile=tls_store.certs["ca"]))
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto, match="TLS is already active"):
        p._shortcmd("STLS")
    p.user("alice")
    p.pass_("a")
    assert pop_bytes(p.retr(2)[1]) == stored[1]
    p.quit()


def test_plaintext_pipelined_behind_stls_closes(tls_store):
    r = tls_store.raw()
    r.send("STLS\r\nUSER alice\r\n")
    assert r.line() == "+OK Begin TLS negotiation now."
    assert r.closed()


def test_corrupt_blob_fails_that_message_only(store):
    stored = three_messages(store)
    blobs = sorted((store.workdir / "spool" / "users").glob("*/alice/m/*/*/1.msg"))
    assert len(blobs) == 1, blobs
    data = bytearray(blobs[0].read_bytes())
    data[-5] ^= 0xFF
    blobs[0].write_bytes(bytes(data))
    r = store.raw()
    r.login("alice", "a")
    assert r.cmd("RETR 1") == "-ERR [SYS/TEMP] The message cannot be read now."
    assert r.cmd("RETR 2").startswith("+OK")
    assert r.multiline().replace(b"\r\n..", b"\r\n.") == stored[1]
    assert r.cmd("TOP 1 0") == "+OK"  # the header cache still answers
    r.multiline()
    assert r.cmd("QUIT").startswith("+OK")
    r.close()


def test_top_without_a_cache_entry_reads_the_blob(store):
    stored = three_messages(store)
    store.stop()
    shutil.rmtree(store.workdir / "index")  # derived data: the store must cope without it
    (store.workdir / "index").mkdir()
    store.start()
    r = store.raw()
    assert r.cmd("XCLIENT ADDR=192.0.2.78 PORT=1") == "+OK"
    r.login("alice", "a")
    assert r.cmd("TOP 3 0") == "+OK"
    assert r.multiline() == stored[2][:stored[2].index(b"\r\n\r\n") + 4]
    assert r.cmd("QUIT").startswith("+OK")
    assert "spool_reads=1 " in store.close_line("ip=192.0.2.78:1 ")
