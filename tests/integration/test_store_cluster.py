"""The README's main job end to end: slapd, two basalt-store shards and basalt-proxy
(tools/cluster/basalt_cluster.py Cluster with store_binary), used with real clients the way the
demo's printed instructions say. Mail delivered by LMTP to a store is readable and searchable
through the proxy, over IMAP and POP3."""

from __future__ import annotations

import imaplib
import poplib
import re
import shlex
import subprocess

import pytest

import basalt_cluster as bc

PW = bc.DEMO_PASSWORD


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, basalt_binary_dir, proxy_binary):
    store = bc.find_store_binary(basalt_binary_dir)
    assert store, f"basalt-store not built in {basalt_binary_dir}"
    c = bc.Cluster(tmp_path_factory.mktemp("cluster"), proxy_binary=proxy_binary, store_binary=store)
    c.start()
    yield c
    c.stop()


def proxy_imap(cluster, user: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(bc.LOOPBACK, cluster.proxy.port("imap"), timeout=30)
    conn.login(user, PW)
    return conn


def test_users_land_on_their_own_store(cluster):
    for user, only in (("alice", "Shard-A-Only"), ("carol", "Shard-B-Only")):
        conn = proxy_imap(cluster, user)
        typ, boxes = conn.list()
        assert typ == "OK"
        names = b"\n".join(boxes).decode()
        assert only in names and "INBOX" in names
        assert ("Shard-B-Only" if only == "Shard-A-Only" else "Shard-A-Only") not in names
        typ, data = conn.select("INBOX")
        assert typ == "OK" and int(data[0]) == 3
        conn.logout()


def test_lmtp_delivery_is_searchable_and_byte_identical_through_the_proxy(cluster):
    message = bc.make_message("Quarterly basalt report", "Numbers attached.\n", to="bob@example.org")
    cluster.shards["a"].deliver("bob", message)
    conn = proxy_imap(cluster, "bob")
    typ, data = conn.select("INBOX")
    assert typ == "OK"
    typ, hits = conn.uid("SEARCH", None, "SUBJECT", '"quarterly basalt"')
    assert typ == "OK"
    uids = hits[0].split()
    assert len(uids) == 1
    typ, fetched = conn.uid("FETCH", uids[0].decode(), "(BODY.PEEK[])")
    assert typ == "OK"
    stored = fetched[0][1]
    # LMTP final delivery adds the Return-Path line (RFC 5321 4.4); the rest is the message.
    assert stored.endswith(message)
    assert stored.startswith(b"Return-Path: <")
    typ, hits = conn.search(None, "BODY", '"numbers attached"')
    assert typ == "OK" and len(hits[0].split()) == 1
    conn.logout()


def test_pop3_through_the_proxy(cluster):
    conn = poplib.POP3(bc.LOOPBACK, cluster.proxy.port("pop3"), timeout=30)
    conn.user("dave")
    conn.pass_(PW)
    count, _ = conn.stat()
    assert count == 3
    _, lines, _ = conn.retr(1)
    assert b"Subject: Welcome to Basalt" in lines
    conn.quit()


def test_refused_users(cluster):
    # Issue 2: moving and disabled users both get a temporary failure from the proxy.
    for user, code in (("erin", "UNAVAILABLE"), ("frank", "UNAVAILABLE")):
        conn = imaplib.IMAP4(bc.LOOPBACK, cluster.proxy.port("imap"), timeout=30)
        with pytest.raises(imaplib.IMAP4.error, match=code):
            conn.login(user, PW)
        conn.shutdown()


def test_the_printed_curl_commands_work(cluster):
    """Every curl line the demo prints (except the refused one) succeeds and shows mail."""
    commands = [line.strip() for line in cluster.howto().splitlines() if line.strip().startswith("curl ")]
    assert len(commands) >= 5
    for command in commands:
        r = subprocess.run(shlex.split(command), capture_output=True, timeout=60)
        if "frank" in command:
            assert r.returncode != 0, command
            continue
        assert r.returncode == 0, f"{command}: {r.stderr.decode(errors='replace')}"
        out = r.stdout.decode(errors="replace")
        assert re.search(r"FETCH|INBOX|Subject|^\d+ \d+", out, re.M), f"{command}: {out[:300]}"
