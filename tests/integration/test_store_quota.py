"""basalt-store per-user quotas end to end (docs/store.md, Quotas): LMTP 552 5.2.2 at RCPT and
per recipient after DATA, IMAP NO [OVERQUOTA] for APPEND and COPY, MOVE at the limit, space
freed by EXPUNGE, and the usage computed again after a restart."""

from __future__ import annotations

import imaplib
import json
import re
from pathlib import Path

import pytest

import basalt_cluster as bc

ALICE_BYTES = 4000  # alice's own limit (quota_bytes); everyone else has the [quota] default
DEFAULT = {"storage_bytes": 1_000_000, "messages": 0}
USERS = bc.users_toml([
    ("alice", "{PLAIN}a", "a", "active", {"quota_bytes": ALICE_BYTES}),
    ("bob", "{PLAIN}b", "a", "active"),
    ("carol", "{PLAIN}c", "a", "active", {"quota_bytes": 0, "quota_messages": 2}),
])
SENDER = "s@example.net"
RETURN_PATH = len(f"Return-Path: <{SENDER}>\r\n")


class Store(bc.Store):
    def __init__(self, workdir: Path, binary: Path, **kwargs) -> None:
        super().__init__(workdir, binary, services=("lmtp", "imap"), quota=DEFAULT, **kwargs)

    def mailbox(self, user: str, name: str = "INBOX") -> list[dict]:
        data = json.loads(self.cli("dump", user))
        boxes = [m for m in data["mailboxes"] if m["name"] == name]
        return boxes[0]["messages"] if boxes else []

    def usage(self, user: str) -> int:
        data = json.loads(self.cli("dump", user))
        return sum(m["size"] for box in data["mailboxes"] for m in box["messages"])

    def imap(self, user: str = "alice", password: str = "a") -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=30)
        c.login(user, password)
        return c


@pytest.fixture
def store(make_store):
    return make_store(Store, users_toml=USERS)


def message(subject: str, size: int) -> bytes:
    """A message of exactly `size` bytes as sent (the store adds the Return-Path line), in
    lines of at most 80 bytes ending with CRLF (so neither smtplib nor imaplib changes it)."""
    head = bc.make_message(subject, body="")
    n = size - len(head)
    assert n >= 2, (size, len(head))
    lines = []
    while n > 80:
        lines.append(b"x" * 76 + b"\r\n")
        n -= 78
    lines.append(b"x" * (n - 2) + b"\r\n")
    return head + b"".join(lines)


def deliver(store, user: str, msg: bytes) -> None:
    c = store.lmtp()
    assert c.sendmail(SENDER, [user], msg) == {}
    c.quit()


def test_lmtp_per_recipient_552_after_data(store):
    deliver(store, "alice", message("first", 2000))
    before = store.mailbox("alice")
    assert store.usage("alice") == 2000 + RETURN_PATH
    msg = message("too much for alice", 2500)  # fits the RCPT check (no SIZE=), not the quota
    c = store.lmtp()
    assert c.mail(SENDER)[0] == 250
    assert c.rcpt("alice@example.org")[0] == 250
    assert c.rcpt("bob")[0] == 250
    first = c.data(msg)
    second = c.getreply()
    assert first == (552, b"5.2.2 <alice@example.org> Mailbox is full"), first
    assert second[0] == 250 and b"<bob> delivered as UID 1" in second[1], second
    assert c.noop()[0] == 250
    c.quit()
    assert store.mailbox("alice") == before
    assert [m["uid"] for m in store.mailbox("bob")] == [1]
    log = store.log_text()
    assert re.search(rf"over quota user=alice usage_bytes={2000 + RETURN_PATH} usage_messages=1 "
                     rf"limit_bytes={ALICE_BYTES} limit_messages=0 adding_bytes={2500 + RETURN_PATH} ", log), log
    assert "result=over-quota" in log


def test_lmtp_rcpt_refused_by_size_or_when_full(store):
    deliver(store, "alice", message("first", 2000))
    c = store.lmtp()
    room = ALICE_BYTES - (2000 + RETURN_PATH) - RETURN_PATH  # what SIZE= may still declare
    assert c.mail(SENDER, [f"SIZE={room + 1}"])[0] == 250
    assert c.rcpt("alice") == (552, b"5.2.2 <alice> Mailbox is full")
    assert c.rcpt("bob")[0] == 250  # the default quota has room
    assert c.rset()[0] == 250
    assert c.mail(SENDER, [f"SIZE={room}"])[0] == 250  # exactly up to the limit
    assert c.rcpt("alice")[0] == 250
    assert c.data(message("fills it", room))[0] == 250
    assert store.usage("alice") == ALICE_BYTES
    # Full: refused at RCPT whatever the size, and DATA has no recipient left.
    assert c.mail(SENDER)[0] == 250
    assert c.rcpt("alice") == (552, b"5.2.2 <alice> Mailbox is full")
    assert c.docmd("DATA")[0] == 503
    c.quit()
    assert len(store.mailbox("alice")) == 2


def test_lmtp_message_limit_and_pipelined_rcpt_checks(store):
    """carol: no byte limit (quota_bytes = 0 overrides the default), two messages at most. The
    RCPT checks run on the pool while pipelined commands wait: replies stay in order."""
    msg = message("m", 500)
    wire = (b"LHLO x\r\n" + b"".join(
        b"MAIL FROM:<s@example.net>\r\nRCPT TO:<carol>\r\nRCPT TO:<bob>\r\nDATA\r\n" + msg + b".\r\n"
        for _ in range(3)) + b"QUIT\r\n")
    out = store.lmtp_raw(wire)
    codes = [l[:9] for l in out.decode().split("\r\n") if l and not l.startswith("250-")]
    ok = ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354 Go ah", "250 2.0.0", "250 2.0.0"]
    assert codes == ["220 basal", "250 SIZE "] + ok + ok + [
        "250 2.1.0", "552 5.2.2", "250 2.1.5", "354 Go ah", "250 2.0.0", "221 2.0.0"], out
    assert len(store.mailbox("carol")) == 2
    assert len(store.mailbox("bob")) == 3


def status(c: imaplib.IMAP4, name: str = "INBOX") -> bytes:
    typ, data = c.status(name, "(MESSAGES UIDNEXT)")
    assert typ == "OK", data
    return data[0]


def test_imap_append_over_quota_then_expunge_frees_space(store):
    c = store.imap()
    typ, _ = c.append("INBOX", None, None, message("one", 3000))
    assert typ == "OK"
    before = status(c)
    typ, data = c.append("INBOX", None, None, message("two", ALICE_BYTES - 3000 + 1))
    assert typ == "NO" and data[0] == b"[OVERQUOTA] Quota exceeded.", data
    assert status(c) == before
    assert len(store.mailbox("alice")) == 1
    typ, _ = c.append("INBOX", None, None, message("exact", ALICE_BYTES - 3000))
    assert typ == "OK"
    assert store.usage("alice") == ALICE_BYTES
    c.select("INBOX")
    c.store("1", "+FLAGS", "\\Deleted")
    typ, _ = c.expunge()
    assert typ == "OK"
    typ, data = c.append("INBOX", None, None, message("after expunge", 3000))
    assert typ == "OK", data
    c.logout()
    assert store.usage("alice") == ALICE_BYTES


def test_imap_copy_refused_move_allowed_and_restart_recounts(store):
    c = store.imap()
    assert c.create("Archive")[0] == "OK"
    assert c.append("INBOX", None, None, message("a", 1500))[0] == "OK"
    assert c.append("INBOX", None, None, message("b", 1500))[0] == "OK"
    c.select("INBOX")
    typ, data = c.copy("1:2", "Archive")
    assert typ == "NO" and data[0] == b"[OVERQUOTA] Quota exceeded.", data
    assert store.mailbox("alice", "Archive") == []  # all or nothing
    typ, data = c.uid("MOVE", "1:2", "Archive")  # at 3000 of 4000 bytes: a MOVE adds nothing
    assert typ == "OK", data
    assert len(store.mailbox("alice", "Archive")) == 2 and store.mailbox("alice") == []
    c.logout()
    store.stop()
    store.start()  # the usage is computed again from the mailboxes
    c = store.imap()
    typ, data = c.append("Archive", None, None, message("c", 1001))
    assert typ == "NO" and b"[OVERQUOTA]" in data[0], data
    assert c.append("Archive", None, None, message("c", 1000))[0] == "OK"
    assert c.delete("Archive")[0] == "OK"  # DELETE frees everything
    assert c.append("INBOX", None, None, message("d", 3900))[0] == "OK"
    c.logout()
