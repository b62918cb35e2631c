"""Real clients against basalt-store, directly and through basalt-proxy, and crash safety of
APPEND: mbsync (isync) syncing both ways and then again with nothing to do; kill -9 of the store while clients
APPEND, in a loop: every acknowledged message survives intact, nothing half-written shows,
UIDs never go backwards."""

from __future__ import annotations

import imaplib
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import basalt_cluster as bc

@pytest.fixture
def store(make_store):
    return make_store(services=("lmtp", "imap"), masters={"proxy": "pw"})


@pytest.fixture(params=["direct", "proxy"])
def imap_port(request, store, tmp_path, proxy_binary):
    """Where a client connects: the store itself, or basalt-proxy in front of it (master login)."""
    if request.param == "direct":
        return store.port("imap")
    proxy, port = bc.store_proxy(tmp_path / "proxy", proxy_binary, store, "imap", {"alice": "a"})
    proxy.start()
    request.addfinalizer(proxy.stop)
    return port


def imap(store) -> imaplib.IMAP4:
    c = imaplib.IMAP4(bc.LOOPBACK, store.port("imap"), timeout=30)
    c.login("alice", "a")
    return c


def deliver(store, subject: str) -> bytes:
    message = bc.make_message(subject, f"Body of {subject}.\n", to="alice@example.org")
    with store.lmtp() as lmtp:
        assert not lmtp.sendmail("sender@example.org", ["alice"], message)
    return message


# ------------------------------------------------------------------------------------ mbsync

def mbsync(rc: Path) -> str:
    r = subprocess.run(["mbsync", "-c", str(rc), "-V", "-a"], capture_output=True, timeout=120)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    return out


def write_mbsyncrc(tmp: Path, port: int) -> tuple[Path, Path]:
    maildir = tmp / "maildir"
    maildir.mkdir()
    rc = tmp / "mbsyncrc"
    rc.write_text(f"""IMAPAccount store
Host {bc.LOOPBACK}
Port {port}
User alice
Pass a
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account store

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    return rc, maildir


def maildir_messages(folder: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).glob("*") if p.is_file())


def server_summary(store, mailbox: str = "INBOX") -> list[tuple[str, bytes]]:
    c = imap(store)
    typ, _ = c.select(f'"{mailbox}"')
    assert typ == "OK"
    typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    c.logout()
    if data == [None]:
        return []
    out = []
    for item in data:
        if isinstance(item, tuple):
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode()
            out.append((flags, item[1].strip()))
    return sorted(out, key=lambda x: x[1])


def test_mbsync_both_ways_then_nothing_to_do(store, imap_port, tmp_path):
    for i in range(3):
        deliver(store, f"Server message {i}")
    rc, maildir = write_mbsyncrc(tmp_path, imap_port)
    mbsync(rc)
    local = maildir_messages(maildir / "INBOX")
    assert len(local) == 3
    assert all(b"Body of Server message" in p.read_bytes() for p in local)

    # Local changes: a new message, a flag, a new folder with a message.
    new = maildir / "INBOX" / "new" / f"{int(time.time())}.1.local"
    new.write_bytes(bc.make_message("Written offline", "Draft.\n"))
    first = local[0]
    first.rename(first.parent.parent / "cur" / (first.name.split(":2,")[0] + ":2,FS"))
    archive = maildir / "Archive"
    for sub in ("cur", "new", "tmp"):
        (archive / sub).mkdir(parents=True)
    (archive / "new" / f"{int(time.time())}.2.local").write_bytes(bc.make_message("Archived", "Old.\n"))
    mbsync(rc)

    inbox = server_summary(store)
    assert len(inbox) == 4
    assert any(b"Written offline" in subject for _, subject in inbox)
    flagged = [flags for flags, _ in inbox if "\\Flagged" in flags]
    assert len(flagged) == 1 and "\\Seen" in flagged[0]
    assert [s for _, s in server_summary(store, "Archive")] == [b"Subject: Archived"]

    # Server side change (a delivery) comes down; then a run with nothing to do changes nothing.
    deliver(store, "Late arrival")
    mbsync(rc)
    assert len(maildir_messages(maildir / "INBOX")) == 5
    before_local = {p.name: p.read_bytes() for p in maildir_messages(maildir / "INBOX")}
    before_server = server_summary(store)
    c = imap(store)
    uidnext_before = c.status("INBOX", "(UIDNEXT MESSAGES)")[1]
    c.logout()
    mark = len(store.log_text())
    mbsync(rc)
    assert "spool_bytes=0 " in store.close_line("user=alice ", mark)  # headers and flags only
    assert {p.name: p.read_bytes() for p in maildir_messages(maildir / "INBOX")} == before_local
    assert server_summary(store) == before_server
    c = imap(store)
    assert c.status("INBOX", "(UIDNEXT MESSAGES)")[1] == uidnext_before  # nothing uploaded
    c.logout()


# ---------------------------------------------------------------------- kill -9 during APPEND

def appender(port: int, messages: list[bytes], acked: list[bytes], stop: threading.Event) -> None:
    """APPENDs until the store dies; records the messages that got a tagged OK."""
    try:
        c = imaplib.IMAP4(bc.LOOPBACK, port, timeout=10)
        c.login("alice", "a")
        for m in messages:
            if stop.is_set():
                break
            typ, _ = c.append("INBOX", None, None, m)
            if typ == "OK":
                acked.append(m)
    except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error, EOFError):
        pass  # the store was killed


def all_messages(store) -> dict[int, bytes]:
    c = imap(store)
    typ, _ = c.select("INBOX")
    assert typ == "OK"
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    assert typ == "OK"
    c.logout()
    out = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            out[uid] = item[1]
    return out


def test_kill_during_append_loses_nothing_acknowledged(store):
    rng = random.Random(7)
    sent: set[bytes] = set()
    acked_all: list[bytes] = []
    max_uid = 0
    for round_no in range(5):
        messages = [bc.make_message(f"Round {round_no} message {i}", "x" * rng.randint(10, 200_000) + "\n")
                    for i in range(40)]
        sent.update(messages)
        acked: list[bytes] = []
        stop = threading.Event()
        threads = [threading.Thread(target=appender, args=(store.port("imap"), messages[k::2], acked, stop))
                   for k in range(2)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 0.8))
        store.signal(signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(30)
        store.stop()
        store.start()
        acked_all += acked
        stored = all_messages(store)
        values = list(stored.values())
        for m in acked_all:
            assert m in values, f"acknowledged message lost in round {round_no}"
        for v in values:
            assert v in sent, "a message that was never sent whole is visible"
        assert len(values) == len(set(values)), "a message is visible twice"
        assert min(stored, default=max_uid + 1) > 0
        new_uids = [u for u in stored if u > max_uid]
        assert all(u > max_uid for u in new_uids)
        max_uid = max(stored, default=max_uid)
        # The next append continues above every UID ever used.
        c = imap(store)
        after = bc.make_message(f"After round {round_no}")
        sent.add(after)
        typ, data = c.append("INBOX", None, None, after)
        assert typ == "OK"
        appenduid = re.search(rb"APPENDUID \d+ (\d+)", data[0])
        assert appenduid and int(appenduid.group(1)) > max_uid
        max_uid = int(appenduid.group(1))
        c.logout()
    assert len(acked_all) >= 5, "too few APPENDs acknowledged before the kills; the test proved little"
