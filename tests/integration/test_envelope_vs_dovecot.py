"""ENVELOPE / BODYSTRUCTURE / BODY / RFC822.SIZE of basalt-summary against a real Dovecot.

Every mime-torture message of the development corpus goes into a Dovecot user's Maildir
(written directly: LMTP would add Return-Path/Received and change the sizes), Dovecot's
FETCH answers are parsed, and so is basalt-summary's output for the same bytes. The set of
messages that differ must equal the list in docs/compliance-envelope.md, so the document
stays true. The corpus is optional by design: without it the test skips, unless
BASALT_REQUIRE_CORPUS=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT
import basalt_cluster as bc

ITEMS = ("RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY")
DOC = REPO_ROOT / "docs" / "compliance-envelope.md"
USER, PASSWORD = "corpus", "corpus-secret"


def corpus_messages() -> list[Path]:
    root = Path(os.environ.get("BASALT_CORPUS_DIR") or REPO_ROOT.parent / "shared" / "corpus")
    cur = root / "maildir" / "mime-torture" / "cur"
    files = sorted(p for p in cur.glob("*") if p.is_file()) if cur.is_dir() else []
    if not files:
        why = f"corpus not found: 1 tests did not run (looked in {cur})"
        if os.environ.get("BASALT_REQUIRE_CORPUS") == "1":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return files


# ---------------------------------------------------------------- IMAP response parsing


def parse_fetches(data: bytes) -> dict[int, dict[str, object]]:
    """'* N FETCH (...)' lines as {N: {ITEM: value}}: strings (quoted or literal) become
    bytes, NIL None, lists lists, numbers and atoms str. Quoting style is not compared."""
    pos = 0
    out: dict[int, dict[str, object]] = {}
    literal = re.compile(rb"\{(\d+)\}\r\n")
    atom = re.compile(rb"[^ ()\r\n\[\]]+(\[[^\]]*\](<\d+>)?)?")  # BODY[...]<origin> is one label

    def value():
        nonlocal pos
        while data[pos:pos + 1] == b" ":
            pos += 1
        c = data[pos:pos + 1]
        if c == b"(":
            pos += 1
            items = []
            while True:
                while data[pos:pos + 1] == b" ":
                    pos += 1
                if data[pos:pos + 1] == b")":
                    pos += 1
                    return items
                items.append(value())
        if c == b'"':
            pos += 1
            buf = bytearray()
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                buf += data[pos:pos + 1]
                pos += 1
            pos += 1
            return bytes(buf)
        if c == b"{":
            m = literal.match(data, pos)
            n = int(m.group(1))
            pos = m.end() + n
            return data[m.end():pos]
        m = atom.match(data, pos)
        assert m, data[pos:pos + 80]
        pos = m.end()
        token = m.group(0).decode()
        return None if token.upper() == "NIL" else token

    head = re.compile(rb"\* (\d+) FETCH ")
    while pos < len(data):
        m = head.match(data, pos)
        if not m:
            nl = data.find(b"\n", pos)
            pos = len(data) if nl < 0 else nl + 1
            continue
        pos = m.end()
        seq = int(m.group(1))
        fields = value()
        out[seq] = {str(fields[i]).upper(): fields[i + 1] for i in range(0, len(fields), 2)}
    return out


def imap_fetch_all(port: int, items: str) -> bytes:
    """LOGIN, SELECT INBOX, FETCH 1:* items; the raw untagged responses."""
    with socket.create_connection((bc.LOOPBACK, port), timeout=60) as s:
        f = s.makefile("rb")
        f.readline()

        def command(tag: bytes, text: bytes) -> bytes:
            s.sendall(tag + b" " + text + b"\r\n")
            out = b""
            while True:
                line = f.readline()
                if not line:
                    raise AssertionError(f"connection closed during {text!r}")
                out += line
                m = re.search(rb"\{(\d+)\}\r\n$", line)
                if m:
                    out += f.read(int(m.group(1)))
                    continue
                if line.startswith(tag + b" "):
                    assert line.split()[1] == b"OK", line
                    return out

        command(b"a", f"LOGIN {USER} {PASSWORD}".encode())
        command(b"b", b"SELECT INBOX")
        return command(b"c", b"FETCH 1:* " + items.encode())


# ---------------------------------------------------------------- setup


def fill_maildir(dovecot: bc.Dovecot, files: list[Path]) -> Path:
    """Copies the messages into the user's Maildir/cur under their corpus names (valid
    Maildir names, unique corpus-wide), owned by the account Dovecot's mail runs as."""
    uid, gid, _ = bc.mail_account()
    home = dovecot.mail_dir / USER
    maildir = home / "Maildir"
    dirs = [home, maildir] + [maildir / d for d in ("cur", "new", "tmp")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, maildir / "cur" / f.name)
    if os.geteuid() == 0:
        for d in dirs:
            os.chown(d, uid, gid)
        for f in files:
            os.chown(maildir / "cur" / f.name, uid, gid)
    return maildir


def uid_to_name(maildir: Path) -> dict[int, str]:
    """UID -> base file name from dovecot-uidlist ('<uid> [ext] :<name>' lines, version 3;
    the name is kept without its ':2,<flags>' info part)."""
    names = {}
    for line in (maildir / "dovecot-uidlist").read_text(errors="replace").splitlines()[1:]:
        uid, _, rest = line.partition(" ")
        names[int(uid)] = rest[rest.index(":") + 1:] if ":" in rest else rest
    return names


def documented_differences(marker: str = "differences") -> set[str]:
    """Message file names listed between the <!-- MARKER:begin/end --> lines of the compliance doc."""
    text = DOC.read_text()
    block = text.split(f"<!-- {marker}:begin -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    return set(re.findall(r"^\|\s*`([^`]+)`", block, re.M))


@contextlib.contextmanager
def corpus_dovecot(workdir: Path, name: str):
    """A Dovecot shard with the corpus user, in workdir/shard-NAME."""
    if not shutil.which(bc.DOVECOT) and not os.path.exists(bc.DOVECOT):
        pytest.fail(f"{bc.DOVECOT} not found: run scripts/install-deps.sh", pytrace=False)
    server = bc.Dovecot(workdir / f"shard-{name}", name, {USER: PASSWORD})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def built_binary(build_dir: Path, relative: str) -> Path:
    """A binary of the build; a failure (not a skip) when it has not been built."""
    binary = build_dir / relative
    if not binary.is_file():
        pytest.fail(f"{binary} not found: build the {binary.name} target (or set BASALT_BUILD_DIR)",
                    pytrace=False)
    return binary


def fetch_both(dovecot: bc.Dovecot, files: list[Path], fetch: str, command: list[str]):
    """The corpus in Dovecot's Maildir; Dovecot's `FETCH 1:* <fetch>` (which must ask for UID)
    and the parsed output of `command` + files, as [(file, ours, Dovecot's)] in file order."""
    maildir = fill_maildir(dovecot, files)
    theirs = parse_fetches(imap_fetch_all(dovecot.imap_port, fetch))
    assert len(theirs) == len(files), f"Dovecot sees {len(theirs)} of {len(files)} messages"
    names = uid_to_name(maildir)
    by_name = {names[int(f["UID"])]: f for f in theirs.values()}
    run = subprocess.run([*command, *map(str, files)], capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    ours = parse_fetches(run.stdout)
    assert len(ours) == len(files)
    return [(f, ours[i], by_name[f.name.split(":")[0]]) for i, f in enumerate(files, 1)]


@pytest.fixture(scope="module")
def corpus() -> list[Path]:
    """Listed first in the test's arguments so a missing corpus skips before Dovecot starts."""
    return corpus_messages()


@pytest.fixture(scope="module")
def dovecot(workdir, request):
    """One shard per test module that uses it (shard-envelope, shard-sections, ...)."""
    name = request.module.__name__.removeprefix("test_").split("_")[0]
    with corpus_dovecot(workdir, name) as server:
        yield server


@pytest.fixture(scope="module")
def summary_binary(basalt_binary_dir) -> Path:
    return built_binary(basalt_binary_dir, "indexer/basalt-summary")


def test_summary_matches_dovecot_except_documented(corpus, dovecot, summary_binary):
    files = corpus
    answers = fetch_both(dovecot, files, "(UID " + " ".join(ITEMS) + ")", [str(summary_binary)])
    differing: dict[str, list[str]] = {}
    for f, ours, reference in answers:
        bad = [item for item in ITEMS if ours.get(item) != reference.get(item)]
        if bad:
            differing[f.name] = bad
    documented = documented_differences()
    report = "\n".join(f"  {name}: {items}" for name, items in sorted(differing.items()))
    assert set(differing) == documented, (
        f"{len(files) - len(differing)} of {len(files)} messages match Dovecot; differing:\n{report}\n"
        f"undocumented: {sorted(set(differing) - documented)}\n"
        f"documented but now identical: {sorted(documented - set(differing))}\n"
        f"fix them, or list them in {DOC.relative_to(REPO_ROOT)} with the RFC reason")
