"""basalt-store LMTP delivery (RFC 2033) end to end: a real basalt-store on 127.0.0.1 with a
temp spool and index root, Python's smtplib.LMTP as the MTA, and `basalt-store dump` / `cat`
to read back what was stored."""

from __future__ import annotations

import json
import os
import random
import signal
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import basalt_cluster as bc

MAX_SIZE = 2 * 1024 * 1024


class Store(bc.Store):
    def __init__(self, workdir: Path, binary: Path, **kwargs) -> None:
        super().__init__(workdir, binary, store_keys=f"max_message_size = {MAX_SIZE}\nlmtp_timeout_s = 30\n", **kwargs)
        self.port = self.ports["lmtp"]

    def inbox(self, user: str) -> list[dict]:
        data = json.loads(self.cli("dump", user))
        boxes = [m for m in data["mailboxes"] if m["name"] == "INBOX"]
        return boxes[0]["messages"] if boxes else []

    def raw(self, user: str, uid: int) -> bytes:
        return self.cli("cat", user, str(uid))


@pytest.fixture
def store(make_store):
    return make_store(Store)


def stored_body(raw: bytes, sender: str) -> bytes:
    prefix = f"Return-Path: <{sender}>\r\n".encode()
    assert raw.startswith(prefix), raw[:80]
    return raw[len(prefix):]


def test_lhlo_capabilities(store):
    c = store.lmtp()
    assert c.does_esmtp
    for ext in ("pipelining", "enhancedstatuscodes", "8bitmime", "size"):
        assert c.has_extn(ext), ext
    assert c.esmtp_features["size"] == str(MAX_SIZE)
    c.quit()


def test_mixed_recipients_one_transaction(store):
    msg = bc.make_message("mixed", to="alice@example.org")
    c = store.lmtp()
    assert c.mail("s@example.net", [f"SIZE={len(msg)}"])[0] == 250
    expected = {"alice@example.org": 250, "nobody@example.org": 550, "carol@example.org": 451,
                "erin": 450, "bob": 250}
    for rcpt, code in expected.items():
        assert c.rcpt(rcpt)[0] == code, rcpt
    # smtplib (3.11) reads one reply after DATA; LMTP sends one per accepted recipient.
    first = c.data(msg)
    second = c.getreply()
    assert first[0] == 250 and b"alice@example.org" in first[1], first
    assert second[0] == 250 and b"<bob>" in second[1], second
    assert c.noop()[0] == 250
    c.quit()
    for user in ("alice", "bob"):
        msgs = store.inbox(user)
        assert [m["uid"] for m in msgs] == [1]
        assert stored_body(store.raw(user, 1), "s@example.net") == msg
        assert msgs[0]["size"] == len(msg) + len(b"Return-Path: <s@example.net>\r\n")
        assert '"mixed"' in msgs[0]["envelope"]
    assert store.inbox("carol") == []
    assert store.inbox("erin") == []


def test_big_message_and_dot_stuffing(store):
    body = "".join(f".line {i} starts with a dot\n..two dots\n" if i % 7 == 0 else f"line {i} " + "x" * 70 + "\n"
                   for i in range(14000))
    msg = bc.make_message("big", body=body)
    assert len(msg) > 1_000_000
    c = store.lmtp()
    assert c.sendmail("s@example.net", ["alice"], msg) == {}
    c.quit()
    assert stored_body(store.raw("alice", 1), "s@example.net") == msg  # smtplib stuffed, we unstuffed


def test_size_limit(store):
    c = store.lmtp()
    # Declared too big: 552 at MAIL.
    code, _ = c.docmd("MAIL", f"FROM:<s@example.net> SIZE={MAX_SIZE + 1}")
    assert code == 552
    # Undeclared and too big: 552 after the data, per recipient; the session stays usable.
    msg = bc.make_message("huge", body="y" * (MAX_SIZE + 10))
    assert c.mail("s@example.net")[0] == 250
    assert c.rcpt("alice")[0] == 250
    assert c.data(msg)[0] == 552
    assert c.noop()[0] == 250
    c.quit()
    assert store.inbox("alice") == []


def raw_session(store, data: bytes, wait_for: bytes = b"", timeout: float = 10) -> bytes:
    s = socket.create_connection(("127.0.0.1", store.port), timeout=timeout)
    out = s.recv(1000)
    s.sendall(data)
    deadline = time.monotonic() + timeout
    while wait_for and wait_for not in out and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_sequencing_errors(store):
    out = raw_session(store, b"MAIL FROM:<a@b>\r\nLHLO x\r\nRCPT TO:<alice>\r\nDATA\r\nMAIL FROM:<a@b>\r\n"
                             b"DATA\r\nMAIL FROM:<a@b>\r\nBOGUS\r\nRCPT TO:alice\r\nQUIT\r\n", b"221")
    lines = [l for l in out.decode().split("\r\n") if l and not l.startswith("250-")]
    codes = [l[:3] for l in lines]
    # greeting, MAIL before LHLO, LHLO, RCPT before MAIL, DATA before MAIL, MAIL, DATA without
    # RCPT, nested MAIL, unknown command, bad RCPT syntax, QUIT
    assert codes == ["220", "503", "250", "503", "503", "250", "503", "503", "500", "501", "221"], lines


def test_pipelined_transactions(store):
    msg1 = bc.make_message("p1")
    msg2 = bc.make_message("p2")
    wire = (b"LHLO x\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n" + msg1 +
            b".\r\nMAIL FROM:<t@example.net>\r\nRCPT TO:<nobody>\r\nRCPT TO:<alice>\r\nDATA\r\n" + msg2 +
            b".\r\nQUIT\r\n")
    out = raw_session(store, wire, b"221")
    codes = [l[:3] for l in out.decode().split("\r\n") if l and not l.startswith("250-")]
    assert codes == ["220", "250", "250", "250", "250", "354", "250", "250",
                     "250", "550", "250", "354", "250", "221"], out
    assert [m["uid"] for m in store.inbox("alice")] == [1, 2]
    assert stored_body(store.raw("alice", 2), "t@example.net") == msg2
    assert stored_body(store.raw("bob", 1), "s@example.net") == msg1


def test_disconnect_before_final_dot_stores_nothing(store):
    msg = bc.make_message("cut")
    out = raw_session(store, b"LHLO x\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice>\r\nDATA\r\n" + msg, b"354")
    assert b"354" in out
    time.sleep(0.5)
    assert store.inbox("alice") == []
    c = store.lmtp()  # the store is still fine
    assert c.sendmail("s@example.net", ["alice"], msg) == {}
    c.quit()
    assert [m["uid"] for m in store.inbox("alice")] == [1]


def test_kill_during_deliveries(store):
    """SIGKILL at a random moment while a stream of deliveries runs (from another thread, so
    the kill lands mid-delivery), ten times; every acknowledged message must survive intact."""
    rng = random.Random(1234)
    acked: dict[int, bytes] = {}  # uid -> message
    seq = 0
    for _ in range(10):
        c = store.lmtp()
        killer = threading.Timer(rng.uniform(0.05, 0.5), os.killpg, (store.proc.pid, signal.SIGKILL))
        killer.start()
        try:
            while seq < 100000:
                seq += 1
                msg = bc.make_message(f"kill {seq}", body=f"message {seq}\n" * (seq % 50 + 1))
                c.sendmail("s@example.net", ["alice"], msg)
                acked[int(c_last_uid(c))] = msg
        except (smtplib.SMTPException, OSError):
            pass
        killer.join()
        store.stop()
        store.start()
    msgs = store.inbox("alice")
    uids = [m["uid"] for m in msgs]
    assert uids == sorted(set(uids)), uids
    assert set(acked) <= set(uids)
    for uid, msg in acked.items():
        assert stored_body(store.raw("alice", uid), "s@example.net") == msg
    for uid in uids:  # unacknowledged but recorded ones are whole too (cat verifies checksums)
        assert b"Subject: kill " in store.raw("alice", uid)
    assert len(acked) >= 10


def c_last_uid(c: smtplib.LMTP) -> str:
    # The 250 reply after DATA says "<addr> delivered as UID n".
    return c_last_uid.reply.rsplit(" ", 1)[1]


_orig_data = smtplib.LMTP.data


def _data_capture(self, msg):
    code, resp = _orig_data(self, msg)
    c_last_uid.reply = resp.decode()
    return code, resp


smtplib.LMTP.data = _data_capture


def test_pipelining_client_that_reads_late(store):
    """Many pipelined commands sent before reading any reply: the store stops reading while
    64 KiB of replies are pending and resumes as they are read; every reply arrives in order."""
    n = 20000
    out = store.lmtp_raw(b"NOOP\r\n" * n + b"QUIT\r\n")
    lines = out.decode().split("\r\n")
    assert lines[0].startswith("220")
    assert lines[1:n + 1] == ["250 2.0.0 OK"] * n
    assert lines[n + 1] == "221 2.0.0 Bye"
