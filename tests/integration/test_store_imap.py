"""basalt-store's IMAP4rev1 server end to end: a real basalt-store on free ports, mail delivered by
LMTP, Python's imaplib (and raw sockets where imaplib cannot say it) as the client, curl as a
real client (mbsync: test_store_clients.py)."""

from __future__ import annotations

import base64
import imaplib
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import basalt_cluster as bc

MAX_APPEND = 1024 * 1024
IMAP_KEYS = f"max_append_size = {MAX_APPEND}\nlogin_timeout_s = 3\nmax_connections = 20\n"


class Store(bc.Store):
    def __init__(self, workdir: Path, binary: Path, **kwargs) -> None:
        super().__init__(workdir, binary, services=("lmtp", "imap"), masters={"proxy": "pw"},
                         service_keys={"imap": IMAP_KEYS}, **kwargs)

    def deliver(self, user: str, subject: str, body: str = "Hello.\n") -> None:
        c = self.lmtp()
        assert c.sendmail("s@example.net", [user], bc.make_message(subject, body=body)) == {}
        c.quit()

    def connect(self) -> imaplib.IMAP4:
        return imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=30)


@pytest.fixture
def store(make_store):
    return make_store(Store)


def login(store, user="alice", password="a") -> imaplib.IMAP4:
    c = store.connect()
    c.login(user, password)
    return c


def selected(store, user="alice", password="a") -> imaplib.IMAP4:
    """A session of `user` with INBOX selected."""
    c = login(store, user, password)
    assert c.select("INBOX")[0] == "OK"
    return c


def with_messages(store, count: int, prefix: str = "m") -> imaplib.IMAP4:
    """alice's session with INBOX selected, after `count` deliveries (subjects prefix0, prefix1, ...)."""
    for i in range(count):
        store.deliver("alice", f"{prefix}{i}")
    return selected(store)


class Raw:
    """A raw IMAP connection for what imaplib cannot express."""

    def __init__(self, store, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", store.port("imap")), timeout=timeout)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def until(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the one tagged `tag`."""
        out = []
        while True:
            l = self.line()
            out.append(l)
            if l.startswith(tag + b" "):
                return out

    def cmd(self, text: bytes, tag: bytes = b"t") -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- greeting, auth


def test_greeting_and_capability(store):
    r = Raw(store)
    assert r.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    caps = r.greeting.split(b"]")[0].split()[2:]
    for cap in (b"LITERAL+", b"SASL-IR", b"ID", b"ENABLE", b"IDLE", b"NAMESPACE", b"UIDPLUS", b"MOVE",
                b"UNSELECT", b"AUTH=PLAIN"):
        assert cap in caps, cap
    assert b"STARTTLS" not in caps  # no [tls] configured
    lines = r.cmd(b"CAPABILITY")
    assert lines[0].startswith(b"* CAPABILITY IMAP4rev1") and lines[-1].startswith(b"t OK")
    assert r.cmd(b"NOOP")[-1].startswith(b"t OK")
    lines = r.cmd(b"LOGOUT")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"t OK")


def test_login_verdicts(store):
    c = login(store)
    typ, data = c.capability()
    assert typ == "OK" and b"IMAP4rev1" in data[0]
    c.logout()
    r = Raw(store)
    start = time.time()
    lines = r.cmd(b"LOGIN alice wrong")
    assert lines[-1].startswith(b"t NO [AUTHENTICATIONFAILED]"), lines
    assert time.time() - start >= 0.8  # delayed by a timer
    assert r.cmd(b"LOGIN frank f")[-1].startswith(b"t NO [AUTHENTICATIONFAILED]")
    assert r.cmd(b"LOGIN erin e")[-1].startswith(b"t NO [UNAVAILABLE]")
    assert r.cmd(b"LOGIN carol c")[-1].startswith(b"t NO [UNAVAILABLE]")
    r.send(b'u LOGIN "alice" {1}\r\n')  # a synchronizing literal
    assert r.line().startswith(b"+ ")
    r.send(b"a\r\n")
    ok = r.until(b"u")[-1]
    assert ok.startswith(b"u OK [CAPABILITY IMAP4rev1"), ok
    assert b"AUTH=PLAIN" not in ok
    assert r.cmd(b"LOGIN alice a")[-1].startswith(b"t BAD")  # already logged in
    r.close()


def test_authenticate_plain(store):
    c = store.connect()
    c.authenticate("PLAIN", lambda _: b"\0alice\0a")  # "+" continuation
    assert c.select("INBOX")[0] == "OK"
    c.logout()
    r = Raw(store)
    assert r.cmd(b"AUTHENTICATE PLAIN " + base64.b64encode(b"\0alice\0a"))[-1].startswith(b"t OK [CAPABILITY")
    r.close()
    r = Raw(store)
    r.send(b"t AUTHENTICATE PLAIN\r\n")
    assert r.line().startswith(b"+")
    r.send(b"*\r\n")
    assert r.line().startswith(b"t BAD")
    assert r.cmd(b"AUTHENTICATE PLAIN !!!")[-1].startswith(b"t BAD")
    assert r.cmd(b"AUTHENTICATE CRAM-MD5")[-1].startswith(b"t NO")
    r.close()


def test_master_login_pipelined_with_id(store):
    """How basalt-proxy logs in: ID with the client's address, then AUTHENTICATE PLAIN with
    authzid, in one write."""
    r = Raw(store)
    creds = base64.b64encode(b"alice\0proxy\0pw")
    r.send(b'a ID ("x-originating-ip" "192.0.2.7" "x-originating-port" "5555")\r\n'
           b"b AUTHENTICATE PLAIN " + creds + b"\r\nc SELECT INBOX\r\n")
    lines = r.until(b"a")
    assert lines[0].startswith(b"* ID ") and lines[-1].startswith(b"a OK")
    assert r.until(b"b")[-1].startswith(b"b OK [CAPABILITY")
    assert r.until(b"c")[-1].startswith(b"c OK [READ-WRITE]")
    r.cmd(b"LOGOUT")
    assert "192.0.2.7:5555" in store.close_line("user=alice ")
    # A wrong master password fails like any bad password.
    r = Raw(store)
    bad = base64.b64encode(b"alice\0proxy\0nope")
    assert r.cmd(b"AUTHENTICATE PLAIN " + bad)[-1].startswith(b"t NO [AUTHENTICATIONFAILED]")


def test_login_timeout(store):
    r = Raw(store)
    start = time.time()
    line = r.line()
    assert line.startswith(b"* BYE"), line
    assert 2 <= time.time() - start < 8


def test_state_errors_and_bad_commands(store):
    r = Raw(store)
    assert r.cmd(b"SELECT INBOX")[-1].startswith(b"t BAD")
    assert r.cmd(b"FROBNICATE")[-1].startswith(b"t BAD")
    r.close()
    c = login(store)
    r = Raw(store)
    r.cmd(b"LOGIN alice a")
    assert r.cmd(b"FETCH 1 FLAGS")[-1].startswith(b"t BAD")  # nothing selected
    assert r.cmd(b'SELECT "INBOX')[-1].startswith(b"t BAD")  # unterminated quoted string
    assert r.cmd(b"SELECT INBOX")[-1].startswith(b"t OK")
    assert r.cmd(b"UID FROB 1")[-1].startswith(b"t BAD")
    r.close()
    c.logout()


# --------------------------------------------------------------------------- select, fetch, store


def test_select_fetch_headers(store):
    for i in range(3):
        store.deliver("alice", f"subject {i}")
    c = login(store)
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    assert c.untagged_responses["RECENT"] == [b"3"]
    assert c.untagged_responses["UIDNEXT"] == [b"4"]
    assert c.untagged_responses["UNSEEN"] == [b"1"]
    assert "UIDVALIDITY" in c.untagged_responses
    typ, data = c.fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODY.PEEK[HEADER])")
    assert typ == "OK"
    heads = [d for d in data if isinstance(d, tuple)]
    assert len(heads) == 3
    assert b"UID 1 " in heads[0][0] and b"\\Recent" in heads[0][0]
    assert b"subject 0" in heads[0][0]  # ENVELOPE
    assert heads[2][1].startswith(b"Return-Path: <s@example.net>\r\n") and b"Subject: subject 2" in heads[2][1]
    typ, data = c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: subject 1\r\n\r\n"
    typ, data = c.uid("FETCH", "3", "(FLAGS)")
    assert b"UID 3" in data[0]
    typ, data = c.fetch("1", "(BODYSTRUCTURE BODY RFC822.HEADER)")
    assert b'BODYSTRUCTURE ("text" "plain"' in data[0][0]
    c.logout()


def test_fetch_body_sets_seen(store):
    store.deliver("alice", "body one", "line one\nline two\n")
    c = selected(store)
    typ, data = c.fetch("1", "(BODY.PEEK[TEXT])")
    assert data[0][1] == b"line one\r\nline two\r\n"
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = c.fetch("1", "(BODY[]<0.11>)")
    assert data[0][1] == b"Return-Path"
    assert b"\\Seen" in data[0][0] or b"\\Seen" in data[-1]  # FLAGS comes with the \Seen change
    typ, data = c.fetch("1", "(RFC822)")
    assert data[0][1].startswith(b"Return-Path:") and data[0][1].endswith(b"line two\r\n")
    c.logout()


def test_invalid_sequence_sets(store):
    store.deliver("alice", "only one")
    c = selected(store)
    for bad in ("0", "2", "1:x", "abc", "1,,2"):
        with pytest.raises(imaplib.IMAP4.error):
            c.fetch(bad, "(FLAGS)")
    typ, data = c.uid("FETCH", "100:200", "(FLAGS)")  # UIDs that do not exist: nothing, OK
    assert typ == "OK"
    with pytest.raises(imaplib.IMAP4.error):
        c.fetch("1", "(NOSUCHITEM)")
    c.logout()


def test_store_flags(store):
    c = with_messages(store, 3)
    typ, data = c.store("1:2", "+FLAGS", "(\\Flagged $Work)")
    assert typ == "OK" and len(data) == 2 and b"\\Flagged" in data[0] and b"$Work" in data[0]
    assert b"$Work" in c.untagged_responses["FLAGS"][-1]  # a new keyword: FLAGS again (RFC 3501 7.2.6)
    typ, data = c.store("1", "-FLAGS", "(\\Flagged)")
    assert b"\\Flagged" not in data[0] and b"$Work" in data[0]
    typ, data = c.store("3", "+FLAGS.SILENT", "(\\Seen)")
    assert typ == "OK" and data == [None]
    typ, data = c.uid("STORE", "2", "FLAGS", "(\\Answered)")
    assert b"UID 2" in data[0] and b"\\Answered" in data[0] and b"$Work" not in data[0]
    typ, data = c.fetch("1:3", "(FLAGS)")
    assert b"$Work" in data[0] and b"\\Answered" in data[1] and b"\\Seen" in data[2]
    with pytest.raises(imaplib.IMAP4.error):
        c.store("1", "+FLAGS", "(\\Recent)")
    c.logout()
    c = login(store)
    c.select("INBOX", readonly=True)  # EXAMINE
    typ, data = c.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "NO" and b"[READ-ONLY]" in data[0]
    c.logout()


def test_expunge_and_uid_expunge(store):
    c = with_messages(store, 5)
    c.store("2,4", "+FLAGS", "(\\Deleted)")
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"4", b"2"]
    c.store("1:2", "+FLAGS", "(\\Deleted)")  # UIDs 1 and 3
    c.uid("EXPUNGE", "3")
    assert c.untagged_responses.pop("EXPUNGE") == [b"2"]
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    assert [re.search(rb"UID (\d+)", d).group(1) for d in data] == [b"1", b"5"]
    c.close()  # expunges UID 1 (\Deleted) silently
    c.select("INBOX")
    typ, data = c.fetch("1:*", "(UID)")
    assert data == [b"1 (UID 5)"]
    c.logout()


# --------------------------------------------------------------------------- mailboxes


def test_mailbox_management(store):
    c = login(store)
    assert c.create("Work/Projects")[0] == "OK"
    assert c.create("Archive")[0] == "OK"
    typ, data = c.create("Archive")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    typ, data = c.list()
    names = [d.decode() for d in data]
    assert any(n.endswith('"/" "INBOX"') for n in names), names
    assert any('\\HasChildren' in n and n.endswith('"/" "Work"') for n in names), names
    assert any(n.endswith('"/" "Work/Projects"') for n in names), names
    typ, data = c.list('""', "%")
    assert not any("Work/Projects" in d.decode() for d in data)
    typ, data = c.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    assert c.subscribe("Archive")[0] == "OK"
    typ, data = c.lsub()
    assert data == [b'() "/" "Archive"']
    assert c.unsubscribe("Archive")[0] == "OK"
    typ, data = c.lsub()
    assert data == [None]
    assert c.rename("Archive", "Old")[0] == "OK"
    typ, data = c.status("Old", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
    assert b"MESSAGES 0" in data[0] and b"UIDNEXT 1" in data[0]
    assert c.delete("Old")[0] == "OK"
    typ, data = c.select("Old")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0]
    assert c.delete("INBOX")[0] == "NO"
    typ, data = c.namespace()
    assert data == [b'(("" "/")) NIL NIL']
    c.logout()


def test_append(store):
    c = login(store)
    msg = bc.make_message("appended")
    typ, data = c.append("INBOX", "(\\Seen $Label)", '"05-Mar-2020 10:11:12 +0200"', msg)
    assert typ == "OK" and data[0].startswith(b"[APPENDUID ") and data[0].split()[2] == b"1]"
    c.select("INBOX")
    typ, data = c.fetch("1", "(FLAGS INTERNALDATE RFC822)")
    assert b"\\Seen" in data[0][0] and b"$Label" in data[0][0]
    assert b'"05-Mar-2020 10:11:12 +0200"' in data[0][0]
    assert data[0][1] == msg
    typ, data = c.append("Nope", None, None, msg)
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    # Without a header block: stored as sent.
    typ, data = c.append("INBOX", None, None, b"just a body line\r\n")
    assert typ == "OK"
    # NUL bytes: refused (RFC 3501 literals are CHAR8, %x01-ff).
    typ, data = c.append("INBOX", None, None, b"Subject: x\r\n\r\nnul \0 here\r\n")
    assert typ == "NO"
    c.logout()
    r = Raw(store)
    r.cmd(b"LOGIN alice a")
    # Over max_append_size: BAD before any "+", the session goes on.
    lines = r.cmd(b"APPEND INBOX {%d}" % (MAX_APPEND + 1))
    assert lines[-1].startswith(b"t BAD"), lines
    # LITERAL+: no continuation.
    body = bc.make_message("literal plus")
    r.send(b"u APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    assert r.until(b"u")[-1].startswith(b"u OK [APPENDUID")
    assert r.cmd(b"NOOP")[-1].startswith(b"t OK")


def test_copy_and_move(store):
    for i in range(3):
        store.deliver("alice", f"m{i}")
    c = login(store)
    c.create("Dest")
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Flagged)")
    typ, data = c.copy("1:2", "Dest")
    assert typ == "OK" and data[0].startswith(b"[COPYUID ") and b" 1:2 1:2]" in data[0]
    typ, data = c.copy("1", "Missing")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    typ, data = c.uid("MOVE", "3", "Dest")
    assert typ == "OK"
    assert c.untagged_responses.get("EXPUNGE") == [b"3"]
    typ, data = c.status("Dest", "(MESSAGES)")
    assert b"MESSAGES 3" in data[0]
    c.select("Dest")
    typ, data = c.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"\\Flagged" in data[0][0] and data[0][1] == b"Subject: m0\r\n\r\n"
    c.logout()


# --------------------------------------------------------------------------- several sessions


def test_two_sessions_see_each_other(store):
    for i in range(3):
        store.deliver("alice", f"m{i}")
    a, b = login(store), login(store)
    a.select("INBOX")
    b.select("INBOX")
    a.store("2", "+FLAGS", "(\\Seen)")
    typ, data = b.noop()
    assert any(b"FLAGS (\\Seen)" in d for d in b.untagged_responses.get("FETCH", [])), b.untagged_responses
    a.store("1", "+FLAGS", "(\\Deleted)")
    a.expunge()
    # FETCH may not announce the expunge (numbers stay as B knows them); NOOP does.
    b.untagged_responses.clear()
    typ, data = b.fetch("1:2", "(UID)")
    assert data == [b"1 (UID 1)", b"2 (UID 2)"] and "EXPUNGE" not in b.untagged_responses
    typ, data = b.fetch("1", "(BODY.PEEK[])")
    assert typ == "NO" and b"[EXPUNGEISSUED]" in data[0]
    b.untagged_responses.pop("EXPUNGE", None)
    b.noop()
    assert b.untagged_responses.get("EXPUNGE") == [b"1"]
    store.deliver("alice", "new one")
    b.untagged_responses.clear()
    b.noop()
    assert b.untagged_responses.get("EXISTS") == [b"3"]
    typ, data = b.fetch("3", "(UID)")
    assert data == [b"3 (UID 4)"]
    a.logout()
    b.logout()


def test_idle_wakes_on_delivery(store):
    r = Raw(store)
    r.cmd(b"LOGIN alice a")
    r.cmd(b"SELECT INBOX")
    r.send(b"i IDLE\r\n")
    assert r.line().startswith(b"+ ")
    store.deliver("alice", "wake up")
    delivered = time.time()  # the 250 came back: the message is committed
    assert r.line() == b"* 1 EXISTS"
    assert time.time() - delivered < 1.0
    r.send(b"DONE\r\n")
    assert r.until(b"i")[-1].startswith(b"i OK")
    r.close()


def test_long_fetch_does_not_block_other_sessions(store):
    big = "x" * 100 + "\n"
    for i in range(4):
        store.deliver("alice", f"big {i}", big * 5000)  # ~500 KB each
    slow = Raw(store)
    slow.cmd(b"LOGIN alice a")
    slow.cmd(b"SELECT INBOX")
    slow.send(b"f FETCH 1:* (BODY.PEEK[])\r\n")  # and read nothing for now
    time.sleep(0.3)
    c = login(store, "bob", "b")
    start = time.time()
    c.select("INBOX")
    c.noop()
    assert time.time() - start < 3.0  # blocked, it would wait until the FETCH is read: never
    c.logout()
    got = b""
    while not re.search(rb"\r\nf OK", got):
        got += slow.sock.recv(1 << 20)
    assert got.count(b"FETCH (BODY[]") == 4


# --------------------------------------------------------------------------- zero spool bytes


def test_header_fetch_reads_zero_spool_bytes(store):
    c = with_messages(store, 20, "h")
    typ, data = c.fetch("1:*", "(FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY "
                        "BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] RFC822.HEADER)")
    assert typ == "OK" and len([d for d in data if isinstance(d, tuple)]) == 20 * 3
    c.logout()
    assert "spool_bytes=0 " in store.close_line("user=alice ")
    mark = len(store.log_text())
    c = selected(store)
    c.fetch("1", "(BODY.PEEK[])")
    c.logout()
    spool = int(re.search(r"spool_bytes=(\d+)", store.close_line("user=alice ", mark)).group(1))
    assert spool > 0


# --------------------------------------------------------------------------- real clients


def test_curl(store):
    store.deliver("alice", "for curl", "curl body\n")
    url = f"imap://127.0.0.1:{store.port('imap')}"
    out = subprocess.run(["curl", "-s", "--max-time", "20", f"{url}/", "-u", "alice:a"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and b"INBOX" in out.stdout, out
    out = subprocess.run(["curl", "-s", "--max-time", "20", f"{url}/INBOX;UID=1", "-u", "alice:a"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and b"Subject: for curl" in out.stdout and b"curl body" in out.stdout, out
    out = subprocess.run(["curl", "-s", "--max-time", "20", f"{url}/INBOX", "-u", "alice:a"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and b'"INBOX"' in out.stdout, out  # LIST "INBOX" *
    out = subprocess.run(["curl", "-s", "--max-time", "20", f"{url}/INBOX?UNSEEN", "-u", "alice:a"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout == b"* SEARCH\r\n", out  # UID 1 was read above
    out = subprocess.run(["curl", "-s", "--max-time", "20", f"{url}/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)",
                          "-u", "alice:a"], capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout == b"Subject: for curl\r\n\r\n", out


# --------------------------------------------------------------------------- sections, damage

MULTIPART = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
             b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
             b"--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
             b"--XX\r\nContent-Type: text/html\r\nX-Part: two\r\n\r\n<p>second</p>\r\n--XX--\r\n")


def test_fetch_sections(store):
    c = login(store)
    c.append("INBOX", None, None, MULTIPART)
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS.NOT (TO FROM MIME-VERSION "
                        "CONTENT-TYPE)] BODY.PEEK[3])")
    assert typ == "OK"
    flat = b"".join(p if isinstance(p, bytes) else p[0] + p[1] for p in data)
    assert b"BODY[1] {10}first part" in flat
    assert b"X-Part: two" in flat
    assert b"Subject: parts\r\n\r\n" in flat and b"From:" not in flat.split(b"HEADER.FIELDS.NOT")[1][:60]
    assert b'BODY[3] ""' in flat  # no such part: the empty string, as Dovecot answers
    typ, data = c.fetch("1", "(BODY.PEEK[TEXT]<6.4>)")
    assert data[0][0].endswith(b"BODY[TEXT]<6> {4}") and data[0][1] == b"Cont"
    c.logout()


def test_corrupt_blob_fails_only_that_message(store):
    store.deliver("alice", "good one")
    store.deliver("alice", "bad one")
    blobs = sorted((store.workdir / "spool" / "users").rglob("2.msg"))
    assert len(blobs) == 1
    raw = bytearray(blobs[0].read_bytes())
    raw[-5] ^= 0xFF
    blobs[0].write_bytes(bytes(raw))
    c = selected(store)
    typ, data = c.fetch("1:2", "(UID BODY.PEEK[])")
    assert typ == "NO" and b"[SERVERBUG]" in data[0]
    typ, data = c.fetch("1:2", "(ENVELOPE)")  # from the header cache: both fine
    assert typ == "OK" and b"bad one" in b"".join(p if isinstance(p, bytes) else b"".join(p) for p in data)
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and b"good one" in data[0][1]
    c.logout()


def test_max_connections(store):
    conns = [Raw(store) for _ in range(20)]
    s = socket.create_connection(("127.0.0.1", store.port("imap")), timeout=10)
    assert s.recv(1024).startswith(b"* BYE [UNAVAILABLE]")
    s.close()
    for r in conns:
        r.close()


# --------------------------------------------------------------------------- STARTTLS


@pytest.fixture
def tls_store(make_tls_store):
    return make_tls_store(Store)


def test_starttls(tls_store):
    import ssl
    r = Raw(tls_store)
    assert b"STARTTLS" in r.greeting and b"LOGINDISABLED" in r.greeting and b"AUTH=PLAIN" not in r.greeting
    assert r.cmd(b"LOGIN alice a")[-1].startswith(b"t NO [PRIVACYREQUIRED]")
    # ID from an untrusted peer is answered but its x-originating-ip is not believed.
    assert r.cmd(b'ID ("x-originating-ip" "203.0.113.9")')[-1].startswith(b"t OK")
    r.cmd(b"LOGOUT")
    line = tls_store.close_line("user= ")  # nobody logged in
    assert "203.0.113.9" not in line and "127.0.0.1" in line
    r.close()
    c = tls_store.connect()
    c.starttls(ssl.create_default_context(cafile=tls_store.certs["ca"]))
    typ, data = c.capability()
    assert b"STARTTLS" not in data[0] and b"AUTH=PLAIN" in data[0]
    c.login("alice", "a")
    assert c.select("INBOX")[0] == "OK"
    c.logout()


def test_plaintext_pipelined_behind_starttls_closes(tls_store):
    r = Raw(tls_store)
    r.send(b"a STARTTLS\r\nb LOGIN alice a\r\n")
    assert r.line().startswith(b"a OK")
    with pytest.raises((EOFError, ConnectionResetError)):
        r.line()


# --------------------------------------------------------------------------- SEARCH, names


def test_search(store):
    store.deliver("alice", "apples", "I like Apples and pears\n")
    store.deliver("alice", "bananas", "yellow fruit\n")
    store.deliver("alice", "cherries", "red fruit\n")
    c = selected(store)
    c.store("2", "+FLAGS", "(\\Flagged)")
    assert c.search(None, "ALL") == ("OK", [b"1 2 3"])
    assert c.search(None, "FLAGGED") == ("OK", [b"2"])
    assert c.search(None, "UNFLAGGED", "SUBJECT", "CHERR") == ("OK", [b"3"])
    assert c.search(None, "OR", "SUBJECT", "apples", "BODY", "yellow") == ("OK", [b"1 2"])
    assert c.search(None, "TEXT", "pears") == ("OK", [b"1"])
    assert c.search(None, "NOT", "BODY", "fruit") == ("OK", [b"1"])
    assert c.search(None, "2:*", "LARGER", "1") == ("OK", [b"2 3"])
    assert c.search(None, "SINCE", "1-Jan-2000", "UNSEEN") == ("OK", [b"1 2 3"])
    assert c.uid("SEARCH", "UID", "2:3") == ("OK", [b"2 3"])
    assert c.search("UTF-8", "SUBJECT", "bananas") == ("OK", [b"2"])
    typ, data = c.search("KOI8-R", "SUBJECT", "x")
    assert typ == "NO" and b"[BADCHARSET" in data[0]
    with pytest.raises(imaplib.IMAP4.error):
        c.search(None, "FROBNICATE")
    c.logout()
    mark = len(store.log_text())
    c = selected(store)
    assert c.search(None, "FROM", "example.org", "SUBJECT", "apples") == ("OK", [b"1"])  # header cache only
    c.logout()
    assert "spool_bytes=0 " in store.close_line("user=alice ", mark)


def test_mailbox_name_rules(store):
    c = login(store)
    assert c.create("inbox")[0] == "NO"  # any case of INBOX is INBOX
    typ, data = c.create("a%b")
    assert typ == "NO" and b"[CANNOT]" in data[0]
    typ, data = c.create("Bad&Utf7")
    assert typ == "NO"
    assert c.create("Entw&APw-rfe")[0] == "OK"  # "Entwürfe" in modified UTF-7
    typ, data = c.list('""', "Entw*")
    assert data == [b'(\\HasNoChildren) "/" "Entw&APw-rfe"']
    assert c.select("inbox")[0] == "OK"
    c.logout()


# --------------------------------------------------------------------------- through the proxy


def test_through_basalt_proxy(store, tmp_path, proxy_binary):
    """basalt-proxy logs in to the store as the master user (ID + AUTHENTICATE PLAIN with
    authzid, pipelined) and then splices: a real client sees the store's mailbox."""
    for i in range(3):
        store.deliver("alice", f"proxied {i}")
    proxy, imap_port = bc.store_proxy(tmp_path, proxy_binary, store, "imap", {"alice": "alice-secret"})
    proxy.start()
    try:
        c = imaplib.IMAP4(bc.LOOPBACK, imap_port, timeout=30)
        client_port = c.sock.getsockname()[1]
        c.login("alice", "alice-secret")
        assert c.select("INBOX") == ("OK", [b"3"])
        typ, data = c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert data[0][1] == b"Subject: proxied 1\r\n\r\n"
        c.store("1", "+FLAGS", "(\\Seen)")
        assert c.search(None, "SEEN") == ("OK", [b"1"])
        c.logout()
        # The store logged the proxy's client (ID x-originating-ip/port), not the proxy.
        assert f"{bc.LOOPBACK}:{client_port}" in store.close_line("user=alice ")
    finally:
        proxy.stop()


def test_enable_unselect_rename_inbox(store):
    store.deliver("alice", "old inbox mail")
    r = Raw(store)
    r.cmd(b"LOGIN alice a")
    lines = r.cmd(b"ENABLE CONDSTORE")
    assert lines[0] == b"* ENABLED" and lines[-1].startswith(b"t OK")
    assert r.cmd(b"SELECT INBOX")[-1].startswith(b"t OK [READ-WRITE]")
    assert r.cmd(b"UNSELECT")[-1].startswith(b"t OK")
    assert r.cmd(b"FETCH 1 FLAGS")[-1].startswith(b"t BAD")  # nothing selected any more
    assert r.cmd(b"RENAME INBOX Saved")[-1].startswith(b"t OK")  # moves the messages, INBOX stays
    lines = r.cmd(b'STATUS Saved (MESSAGES)')
    assert lines[0] == b'* STATUS "Saved" (MESSAGES 1)'
    lines = r.cmd(b"STATUS INBOX (MESSAGES)")
    assert lines[0] == b'* STATUS "INBOX" (MESSAGES 0)'
    assert r.cmd(b"STATUS INBOX (BOGUS)")[-1].startswith(b"t BAD")
    assert r.cmd(b"CHECK")[-1].startswith(b"t BAD")  # CHECK needs a selected mailbox
    r.close()


def test_missing_cache_entries_are_rebuilt(store):
    for i in range(3):
        store.deliver("alice", f"cached {i}")
    store.stop()
    shutil.rmtree(store.workdir / "index")  # the header cache is rebuilt from the spool
    store.start()
    mark = len(store.log_text())
    c = selected(store)
    typ, data = c.fetch("1:*", "(ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and data[4][1] == b"Subject: cached 2\r\n\r\n"
    c.logout()
    assert int(re.search(r"spool_bytes=(\d+)", store.close_line("user=alice ", mark)).group(1)) > 0
    mark = len(store.log_text())
    c = selected(store)
    assert c.fetch("1:*", "(ENVELOPE)")[0] == "OK"
    c.logout()
    assert "spool_bytes=0 " in store.close_line("user=alice ", mark)  # recached on the first read
