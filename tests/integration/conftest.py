"""Fixtures for integration tests: a real slapd, Dovecot shards a and b, the proxy binary.

Everything runs on 127.0.0.1 with ports picked at run time, under one work directory
per session (kept when BASALT_KEEP_WORKDIR=1). A missing slapd or Dovecot is a failure.

Test files can import the harness and the users:
    from conftest import TEST_USERS, SHARD_HOSTS, users_of
    from basalt_cluster import Proxy, proxy_config, make_message
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools" / "cluster"))

import basalt_cluster as bc  # noqa: E402

# Routing-attribute values (mailHost) that mean each shard; "imap.b.mail.test" is an alias.
SHARD_HOSTS = {"a": ["a.mail.test"], "b": ["b.mail.test", "imap.b.mail.test"]}

# shard: where the user's mail lives (None: on no shard). Other keys go to LDAP.
TEST_USERS = [
    dict(uid="alice", password="alice-secret", mail_host="a.mail.test", status="active", shard="a"),
    dict(uid="bob", password="bob-secret", mail_host="a.mail.test", shard="a"),  # no status
    dict(uid="carol", password="carol-secret", mail_host="b.mail.test", status="active", shard="b"),
    dict(uid="dave", password="dave-secret", mail_host="imap.b.mail.test", status="active",
         shard="b"),  # routed through shard b's alias
    dict(uid="erin", password="erin-secret", mail_host="a.mail.test", status="moving", shard="a"),
    dict(uid="frank", password="frank-secret", mail_host="b.mail.test", status="disabled",
         shard="b"),
    dict(uid="grace", password='gr ace"q\\uote', mail_host="a.mail.test", status="active",
         shard="a"),  # password needs IMAP quoting (space, quote, backslash)
    dict(uid="nohost", password="nohost-secret", mail_host=None, status="active", shard=None),
    dict(uid="lost", password="lost-secret", mail_host="z.mail.test", status="active",
         shard=None),  # mailHost that no shard claims
]
USERS = {u["uid"]: u for u in TEST_USERS}
SHARD_ONLY_MAILBOX = {"a": "Shard-A-Only", "b": "Shard-B-Only"}


def users_of(shard: str) -> dict[str, str]:
    """{uid: password} of the users whose mail lives on shard."""
    return {u["uid"]: u["password"] for u in TEST_USERS if u["shard"] == shard}


def _require(binary: str) -> None:
    if not shutil.which(binary) and not os.path.exists(binary):
        pytest.fail(f"{binary} not found: run scripts/install-deps.sh", pytrace=False)


@pytest.fixture(scope="session")
def workdir():
    """A fresh directory for the session. Searchable by others (0711) because, as root,
    Dovecot's mail processes run as an unprivileged user and must reach their store."""
    base = os.environ.get("BASALT_TEST_TMPDIR") or None
    path = Path(tempfile.mkdtemp(prefix="basalt-it-", dir=base))
    path.chmod(0o711)
    yield path
    if os.environ.get("BASALT_KEEP_WORKDIR") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def certs(workdir):
    """dict(ca=, cert=, key=) for localhost / 127.0.0.1 / ::1."""
    _require("openssl")
    return bc.make_certs(workdir / "certs")


@pytest.fixture(scope="session")
def slapd(workdir):
    """slapd with TEST_USERS. Tests that change entries or pause it must restore them."""
    _require(bc.SLAPD)
    _require("ldapsearch")
    server = bc.Slapd(workdir / "slapd", TEST_USERS)
    server.start()
    yield server
    server.stop()


def _shard(workdir: Path, name: str, certs: dict) -> bc.Dovecot:
    _require(bc.DOVECOT)
    shard = bc.Dovecot(workdir / f"shard-{name}", name, users_of(name),
                       cert=certs["cert"], key=certs["key"])
    shard.start()
    try:
        for user in users_of(name):
            shard.create_mailbox(user, SHARD_ONLY_MAILBOX[name])
            shard.deliver(user, bc.make_message(f"Welcome {user} to shard {name}",
                                                to=f"{user}@example.org"))
    except BaseException:
        shard.stop()
        raise
    return shard


@pytest.fixture(scope="session")
def shard_a(workdir, certs):
    """Dovecot shard a: users_of("a"), each with one INBOX message and Shard-A-Only."""
    shard = _shard(workdir, "a", certs)
    yield shard
    shard.stop()


@pytest.fixture(scope="session")
def shard_b(workdir, certs):
    """Dovecot shard b: users_of("b"), each with one INBOX message and Shard-B-Only."""
    shard = _shard(workdir, "b", certs)
    yield shard
    shard.stop()


@pytest.fixture(scope="session")
def basalt_binary_dir() -> Path:
    """The CMake build directory ($BASALT_BUILD_DIR, default ./build)."""
    return Path(os.environ.get("BASALT_BUILD_DIR", REPO_ROOT / "build")).resolve()


@pytest.fixture(scope="session")
def proxy_binary(basalt_binary_dir) -> Path:
    """Path to basalt-proxy; a failure (not a skip) when it has not been built."""
    binary = bc.find_proxy_binary(basalt_binary_dir)
    if binary is None:
        pytest.fail(f"basalt-proxy not found under {basalt_binary_dir} (build it, or set "
                    f"BASALT_BUILD_DIR)", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def store_binary(basalt_binary_dir) -> Path:
    """Path to basalt-store; a failure (not a skip) when it has not been built."""
    binary = bc.find_store_binary(basalt_binary_dir)
    if binary is None:
        pytest.fail(f"basalt-store not found under {basalt_binary_dir}", pytrace=False)
    return binary


# The users file of every basalt-store test (store shard "a"): passwords are the first letter.
STORE_USERS = bc.users_toml([
    ("alice", "{PLAIN}a", "a", "active"),
    ("bob", "{PLAIN}b", "a", "active"),
    ("carol", "{PLAIN}c", "b", "active"),      # on another shard
    ("dave", "{PLAIN}d", "a", "disabled"),
    ("erin", "{PLAIN}e", "a", "moving"),
    ("frank", "{PLAIN}f", "a", "disabled"),
])


@pytest.fixture
def make_store(tmp_path, store_binary):
    """Factory: make_store(cls=bc.Store, start=True, **kwargs) -> a basalt-store with STORE_USERS
    (kwargs go to cls: services, masters, service_keys, trusted, tls_certs, ...), stopped after
    the test."""
    made: list[bc.Store] = []

    def make(cls=bc.Store, start: bool = True, **kwargs) -> bc.Store:
        kwargs.setdefault("users_toml", STORE_USERS)
        s = cls(tmp_path / f"store{len(made)}", store_binary, **kwargs)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    bc.stop_all(made)


@pytest.fixture
def make_tls_store(make_store, tmp_path):
    """Factory: make_tls_store(cls=bc.Store, **kwargs) -> make_store(cls, ...) with [tls]
    configured (certificates from bc.make_certs) and 127.0.0.1 NOT trusted, so plaintext
    logins need STARTTLS / STLS first."""

    def make(cls=bc.Store, **kwargs) -> bc.Store:
        return make_store(cls, trusted="192.0.2.0/24", tls_certs=bc.make_certs(tmp_path / "certs"), **kwargs)

    return make


@pytest.fixture
def make_proxy(workdir, slapd, shard_a, shard_b, certs, proxy_binary, request):
    """Factory: make_proxy(listeners=("imap", "imaps", "pop3", "pop3s"), config=None,
    **overrides) -> a started Proxy on free ports, stopped after the test. config (TOML
    text) replaces the rendered one; overrides deep-merge into it (see proxy_config)."""
    started: list[bc.Proxy] = []

    def make(listeners=("imap", "imaps", "pop3", "pop3s"), config: str | None = None,
             **overrides) -> bc.Proxy:
        overrides.setdefault("shard_hosts", SHARD_HOSTS)
        text = config or bc.proxy_config(slapd, {"a": shard_a, "b": shard_b},
                                         {p: bc.free_port() for p in listeners}, certs,
                                         **overrides)
        # The name's end carries the parameters: keep it, so parametrized runs get their own dirs.
        name = f"proxy-{request.node.name[-72:]}-{len(started)}".replace("/", "_")
        proxy = bc.Proxy(workdir / name, proxy_binary, text)
        started.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in started:
        proxy.stop()
