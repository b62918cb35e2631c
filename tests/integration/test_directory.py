"""basalt_directory against a real slapd, driven through `basaltctl auth test|bench`.

`auth test` runs one authenticate() in a fresh process (a cold directory: connect, service
bind, search, user bind). `auth bench` keeps one directory alive over many logins, which is
what the cache, mid-session failures and concurrency need.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import basalt_cluster as bc
from conftest import TEST_USERS, USERS

CONNECT_TIMEOUT_MS = 1000
OPERATION_TIMEOUT_MS = 1500
RETRY_INTERVAL_MS = 200
MARGIN_S = 1.0  # process start, config parse, scheduling

INJECTION_NAMES = ["*", ")(uid=*", "*)(|(uid=*", "\\", "alice)(|(uid=*", "al*", "*)(uid=alice",
                   "alice\\", "(uid=alice)", "alice)(objectClass=*", "*)(userPassword=*",
                   "alice\x00", "alice\n", "alice\r\nuid: bob", "\\2a", "%u", "\u00e9*"]


@dataclass
class AuthRun:
    rc: int
    fields: dict[str, str]
    elapsed_s: float
    stderr: str

    @property
    def outcome(self) -> str:
        return self.fields.get("outcome", "")

    @property
    def detail(self) -> str:
        return self.fields.get("detail", "")


@pytest.fixture(scope="module")
def basaltctl(basalt_binary_dir) -> Path:
    path = basalt_binary_dir / "tools" / "basaltctl" / "basaltctl"
    if not path.exists():
        pytest.fail(f"basaltctl not found at {path} (build it, or set BASALT_BUILD_DIR)",
                    pytrace=False)
    return path


def directory_config(slapd: bc.Slapd, uris: list[str] | None = None, cache_ttl_s: int = 0,
                     **ldap) -> str:
    table = dict(uris=uris or [slapd.uri], bind_dn=slapd.service_dn,
                 bind_password=slapd.service_password, base_dn=slapd.people_dn,
                 connect_timeout_ms=CONNECT_TIMEOUT_MS, operation_timeout_ms=OPERATION_TIMEOUT_MS,
                 retry_interval_ms=RETRY_INTERVAL_MS)
    table.update(ldap)
    return bc.to_toml({"directory": {"backend": "ldap", "cache_ttl_s": cache_ttl_s, "ldap": table}})


class Ctl:
    """basaltctl with one config file."""

    def __init__(self, binary: Path, config_path: Path):
        self.binary = binary
        self.config_path = config_path

    def auth(self, user: str, password: str, timeout: float = 30.0) -> AuthRun:
        start = time.monotonic()
        res = subprocess.run([str(self.binary), "-c", str(self.config_path), "auth", "test", user],
                             input=(password + "\n").encode(), capture_output=True, timeout=timeout)
        elapsed = time.monotonic() - start
        fields = {}
        for line in res.stdout.decode(errors="replace").splitlines():
            key, _, value = line.partition(": ")
            fields[key] = value
        return AuthRun(res.returncode, fields, elapsed, res.stderr.decode(errors="replace"))

    def bench_process(self, users: list[str], password: str, *args: str,
                      merge_stderr: bool = False) -> subprocess.Popen:
        """Started with the password written; merge_stderr=True for reading lines as they
        come (then read with finish(), not communicate())."""
        proc = subprocess.Popen([str(self.binary), "-c", str(self.config_path), "auth", "bench",
                                 *users, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                                text=True)
        proc.stdin.write(password + "\n")
        proc.stdin.close()
        proc.stdin = None  # so that communicate() does not flush it
        return proc

    def bench(self, users: list[str], password: str, *args: str, timeout: float = 120.0) -> dict:
        proc = self.bench_process(users, password, *args)
        out, err = proc.communicate(timeout=timeout)
        stats = {"rc": proc.returncode, "stdout": out, "stderr": err}
        for line in out.splitlines():
            key, _, value = line.partition(": ")
            stats[key] = value
        return stats


def make_ctl(basaltctl: Path, tmp_path: Path, text: str, name: str = "proxy.toml") -> Ctl:
    path = tmp_path / name
    path.write_text(text)
    return Ctl(basaltctl, path)


@pytest.fixture
def ctl(basaltctl, slapd, tmp_path) -> Ctl:
    return make_ctl(basaltctl, tmp_path, directory_config(slapd))


@contextlib.contextmanager
def paused(daemon: bc.Daemon):
    daemon.pause()
    try:
        yield
    finally:
        daemon.resume()


@contextlib.contextmanager
def hung_listener():
    """A port that completes TCP handshakes and never answers (like a hung server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((bc.LOOPBACK, 0))
        s.listen(16)
        yield f"ldap://{bc.LOOPBACK}:{s.getsockname()[1]}"


def finish(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    """The rest of a merge_stderr bench's output. communicate() would bypass what readline()
    already buffered."""
    deadline = time.monotonic() + timeout
    out = proc.stdout.read()
    proc.wait(max(0.1, deadline - time.monotonic()))
    return out


def parse_logins(stdout: str) -> list[dict]:
    pattern = re.compile(r"login (\d+) (\w+) t_ms=([\d.]+) latency_ms=([\d.]+) detail=(.*)")
    logins = []
    for line in stdout.splitlines():
        m = pattern.fullmatch(line)
        if m:
            logins.append(dict(index=int(m[1]), outcome=m[2], t=float(m[3]) / 1000,
                               latency=float(m[4]) / 1000, detail=m[5]))
    return logins


# ----------------------------------------------------------------------------- outcomes

def test_ok_user_gets_route(ctl, slapd):
    run = ctl.auth("alice", USERS["alice"]["password"])
    assert run.rc == 0, run
    assert run.outcome == "ok"
    assert run.fields["user"] == "alice"
    assert run.fields["shard"] == "a.mail.test"
    assert run.fields["status"] == "active"
    assert run.fields["dn"] == slapd.user_dn("alice")
    assert float(run.fields["elapsed_ms"]) < 1000


def test_every_active_user_and_quoting_password(ctl):
    for uid in ("bob", "carol", "dave", "grace"):
        run = ctl.auth(uid, USERS[uid]["password"])
        assert (run.rc, run.outcome) == (0, "ok"), (uid, run)
        assert run.fields["shard"] == USERS[uid]["mail_host"]
    assert ctl.auth("bob", USERS["bob"]["password"]).fields["status"] == ""  # no status: active


def test_user_without_route_is_ok_with_empty_shard(ctl):
    run = ctl.auth("nohost", USERS["nohost"]["password"])
    assert (run.rc, run.outcome, run.fields["shard"]) == (0, "ok", "")


def test_wrong_password(ctl):
    run = ctl.auth("alice", "not-" + USERS["alice"]["password"])
    assert (run.rc, run.outcome, run.detail) == (1, "bad_credentials", "wrong password")
    assert run.fields["shard"] == "" and run.fields["dn"] == ""  # nothing revealed
    run = ctl.auth("alice", USERS["bob"]["password"])
    assert (run.rc, run.outcome) == (1, "bad_credentials")


def test_unknown_user(ctl):
    run = ctl.auth("mallory", "whatever")
    assert (run.rc, run.outcome, run.detail) == (1, "bad_credentials", "unknown user")


def test_empty_password_is_refused_without_ldap(ctl, slapd):
    with paused(slapd):  # proves no LDAP round trip is needed
        run = ctl.auth("alice", "")
    assert (run.rc, run.outcome, run.detail) == (1, "bad_credentials", "empty password")
    assert run.elapsed_s < MARGIN_S


def test_disabled_and_moving_users(ctl):
    run = ctl.auth("frank", USERS["frank"]["password"])
    assert (run.rc, run.outcome, run.fields["status"]) == (1, "disabled", "disabled")
    run = ctl.auth("erin", USERS["erin"]["password"])
    assert (run.rc, run.outcome, run.fields["shard"]) == (1, "moving", "a.mail.test")
    # The status is only revealed to the right password.
    for uid in ("frank", "erin"):
        run = ctl.auth(uid, "wrong")
        assert (run.rc, run.outcome) == (1, "bad_credentials"), uid


def test_service_password_does_not_log_anyone_in(ctl, slapd):
    for user in ("alice", "proxy", "cn=proxy,ou=services," + slapd.base_dn):
        run = ctl.auth(user, slapd.service_password)
        assert run.rc == 1, (user, run)


# ----------------------------------------------------------------------------- hostile input

def test_injection_names_never_authenticate(ctl, slapd):
    passwords = [USERS["alice"]["password"], slapd.service_password, "x"]
    log_before = len(slapd.log_text())
    for name in INJECTION_NAMES:
        if "\x00" in name:
            continue  # cannot travel in argv; covered by the unit tests
        for password in passwords:
            run = ctl.auth(name, password)
            assert run.rc == 1, (name, run)
            assert run.outcome == "bad_credentials", (name, run)
            assert "Sanitizer" not in run.stderr and "terminate" not in run.stderr
    assert slapd.running()
    new_log = slapd.log_text()[log_before:]
    filters = re.findall(r'SRCH base="[^"]*" scope=\d deref=\d filter="([^"]*)"', new_log)
    assert filters, "slapd logged no searches"
    for f in filters:
        # Every filter is the template with one escaped value: nothing the user typed can
        # open, close or wildcard a component.
        m = re.fullmatch(r"\(&\(objectClass=inetOrgPerson\)\(uid=(.*)\)\)", f)
        assert m, f
        assert not re.search(r"[()*]", m[1]), f
    # Names with CR/LF never reached slapd at all.
    assert not any("\n" in f or "\r" in f for f in filters)
    assert ctl.auth("alice", USERS["alice"]["password"]).rc == 0  # still serving


def test_control_characters_are_refused_before_ldap(ctl, slapd):
    with paused(slapd):
        for name in ("alice\n", "alice\r\nuid: bob", "al\tice", "\x7f"):
            run = ctl.auth(name, USERS["alice"]["password"])
            assert (run.rc, run.outcome) == (1, "bad_credentials"), (name, run)
            assert run.detail.startswith("invalid user name"), run
            assert run.elapsed_s < MARGIN_S


def test_10kb_name(ctl, slapd):
    with paused(slapd):
        run = ctl.auth("a" * 10 * 1024, USERS["alice"]["password"])
    assert (run.rc, run.outcome) == (1, "bad_credentials")
    assert "longer than 256 bytes" in run.detail
    run = ctl.auth("*" * 256, "x")  # the longest accepted name, all escaped (768 bytes)
    assert (run.rc, run.outcome) == (1, "bad_credentials")
    assert slapd.running()


def test_ambiguous_filter_is_refused(basaltctl, slapd, tmp_path):
    # With this filter "b.mail.test" matches carol and frank.
    ctl = make_ctl(basaltctl, tmp_path, directory_config(
        slapd, user_filter="(&(objectClass=inetOrgPerson)(|(uid=%u)(mailHost=%u)))"))
    run = ctl.auth("b.mail.test", USERS["carol"]["password"])
    assert (run.rc, run.outcome) == (1, "bad_credentials")
    assert run.detail.startswith("ambiguous"), run
    assert ctl.auth("carol", USERS["carol"]["password"]).rc == 0


# ----------------------------------------------------------------------------- failures

def test_paused_slapd_is_unavailable_within_timeout(ctl, slapd):
    with paused(slapd):
        run = ctl.auth("alice", USERS["alice"]["password"])
    assert (run.rc, run.outcome) == (2, "unavailable"), run
    assert run.elapsed_s < OPERATION_TIMEOUT_MS / 1000 + MARGIN_S, run
    assert ctl.auth("alice", USERS["alice"]["password"]).rc == 0  # recovered


def test_pause_during_a_session_times_out_then_recovers(basaltctl, slapd, tmp_path):
    """One directory, logins every 100 ms; slapd is paused for a while in the middle: the
    logins in flight time out (operation_timeout), later ones fail, then it recovers."""
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd))
    proc = ctl.bench_process(["alice"], USERS["alice"]["password"], "-n", "60", "-c", "2",
                             "--interval-ms", "100", "--print-each", merge_stderr=True)
    try:
        first = proc.stdout.readline()
        assert " ok " in first, first
        time.sleep(0.3)
        with paused(slapd):
            time.sleep(3.5)
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    logins = parse_logins(first + out)
    outcomes = [l["outcome"] for l in logins]
    assert len(logins) == 60, out
    assert "unavailable" in outcomes, outcomes
    assert outcomes[-5:] == ["ok"] * 5, outcomes  # recovered after resume
    assert set(outcomes) == {"ok", "unavailable"}, outcomes
    for l in logins:
        assert l["latency"] < OPERATION_TIMEOUT_MS / 1000 + 0.5, l
    assert any("timed out" in l["detail"] for l in logins), [l["detail"] for l in logins]


def test_stopped_slapd_is_unavailable_quickly(basaltctl, workdir, tmp_path):
    server = bc.Slapd(workdir / "slapd-stop", TEST_USERS[:2])
    server.start()
    try:
        ctl = make_ctl(basaltctl, tmp_path, directory_config(server))
        assert ctl.auth("alice", USERS["alice"]["password"]).rc == 0
        server.stop()
        run = ctl.auth("alice", USERS["alice"]["password"])
        assert (run.rc, run.outcome) == (2, "unavailable"), run
        assert "Connection refused" in run.detail, run
        assert run.elapsed_s < MARGIN_S, run
        server.start()
        assert ctl.auth("alice", USERS["alice"]["password"]).rc == 0
    finally:
        server.stop()


def test_stop_and_restart_during_a_session(basaltctl, workdir, tmp_path):
    """Connections lost under a live directory: failures are fast (refused + back-off),
    then it reconnects by itself once the server is back."""
    server = bc.Slapd(workdir / "slapd-restart", TEST_USERS[:2])
    server.start()
    ctl = make_ctl(basaltctl, tmp_path, directory_config(server))
    proc = ctl.bench_process(["alice"], USERS["alice"]["password"], "-n", "60", "-c", "1",
                             "--interval-ms", "100", "--print-each", merge_stderr=True)
    try:
        assert " ok " in proc.stdout.readline()
        server.stop()
        time.sleep(0.8)
        server.start()
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    logins = parse_logins(out)
    outcomes = [l["outcome"] for l in logins]
    assert "unavailable" in outcomes, out
    assert outcomes[-3:] == ["ok"] * 3, outcomes
    assert set(outcomes) == {"ok", "unavailable"}, outcomes
    assert max(l["latency"] for l in logins) < MARGIN_S, logins


def test_failover_to_second_uri(basaltctl, slapd, tmp_path):
    dead = f"ldap://{bc.LOOPBACK}:{bc.free_port()}"
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, uris=[dead, slapd.uri]))
    run = ctl.auth("alice", USERS["alice"]["password"])
    assert (run.rc, run.outcome, run.fields["shard"]) == (0, "ok", "a.mail.test"), run
    assert run.elapsed_s < MARGIN_S


def test_failover_past_a_hung_server(basaltctl, slapd, tmp_path):
    with hung_listener() as hung:
        ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, uris=[hung, slapd.uri],
                                                             connect_timeout_ms=300))
        run = ctl.auth("alice", USERS["alice"]["password"])
    assert (run.rc, run.outcome) == (0, "ok"), run
    assert 0.3 <= float(run.fields["elapsed_ms"]) / 1000 < 0.3 * 2 + MARGIN_S, run


def test_all_uris_dead(basaltctl, slapd, tmp_path):
    uris = [f"ldap://{bc.LOOPBACK}:{bc.free_port()}" for _ in range(3)]
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, uris=uris))
    run = ctl.auth("alice", USERS["alice"]["password"])
    assert (run.rc, run.outcome) == (2, "unavailable"), run
    assert "all LDAP servers failed" in run.detail and uris[-1] in run.detail, run


def test_wrong_service_password_is_unavailable(basaltctl, slapd, tmp_path):
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, bind_password="wrong"))
    run = ctl.auth("alice", USERS["alice"]["password"])
    assert (run.rc, run.outcome) == (2, "unavailable"), run
    assert "service bind failed: Invalid credentials" in run.detail, run


def test_invisible_base_dn_is_unavailable_not_bad_credentials(basaltctl, slapd, tmp_path):
    # Anonymous searches: the ACLs hide ou=people itself, slapd answers noSuchObject. A
    # configuration problem must not look like a wrong password (users would be penalised).
    text = directory_config(slapd).replace(f'bind_dn = "{slapd.service_dn}"\n', "")
    text = text.replace(f'bind_password = "{slapd.service_password}"\n', "")
    ctl = make_ctl(basaltctl, tmp_path, text)
    run = ctl.auth("alice", USERS["alice"]["password"])
    assert (run.rc, run.outcome) == (2, "unavailable"), run
    assert run.detail == "search failed: No such object", run


def test_config_errors_exit_3(basaltctl, slapd, tmp_path):
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, scope="subtree"))
    run = ctl.auth("alice", "x")
    assert run.rc == 3 and "directory.ldap.scope" in run.stderr, run
    missing = Ctl(basaltctl, tmp_path / "missing.toml")
    assert missing.auth("alice", "x").rc == 3
    (tmp_path / "broken.toml").write_text("[directory\n")
    assert Ctl(basaltctl, tmp_path / "broken.toml").auth("alice", "x").rc == 3


def test_password_file_option(ctl, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(USERS["alice"]["password"] + "\n")
    res = subprocess.run([str(ctl.binary), "-c", str(ctl.config_path), "auth", "test", "alice",
                          "--password-file", str(pw)], capture_output=True, timeout=30)
    assert res.returncode == 0, res


# ----------------------------------------------------------------------------- cache

def test_status_change_is_seen_after_cache_ttl(basaltctl, slapd, tmp_path):
    ttl = 2.0
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, cache_ttl_s=int(ttl)))
    proc = ctl.bench_process(["alice"], USERS["alice"]["password"], "-n", "30", "-c", "1",
                             "--interval-ms", "150", "--print-each", merge_stderr=True)
    try:
        first = parse_logins(proc.stdout.readline())[0]
        assert first["outcome"] == "ok"
        start = time.monotonic()
        slapd.modify("alice", status="disabled")
        modified_at = first["t"] + (time.monotonic() - start)
        out = finish(proc)
    finally:
        slapd.modify("alice", status="active")
        if proc.poll() is None:
            proc.kill()
    logins = parse_logins(out)
    outcomes = [l["outcome"] for l in logins]
    # Served from the cache for a while after the change (no search: status still active)...
    assert any(l["outcome"] == "ok" and l["t"] > modified_at + 0.2 for l in logins), logins
    # ...and seen once the entry expired: first search at ~first["t"], TTL later at the latest.
    first_disabled = next(l for l in logins if l["outcome"] == "disabled")
    assert first_disabled["t"] <= first["t"] + ttl + 0.5, logins
    assert outcomes[-1] == "disabled" and "ok" not in outcomes[outcomes.index("disabled"):], outcomes


def test_wrong_password_is_never_cached(basaltctl, slapd, tmp_path):
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, cache_ttl_s=60))
    stats = ctl.bench(["alice"], "wrong", "-n", "20", "-c", "4")
    assert stats.get("bad_credentials") == "20", stats


# ----------------------------------------------------------------------------- load

@pytest.mark.parametrize("cache", [True, False], ids=["cached", "uncached"])
def test_many_concurrent_logins_are_multiplexed(basaltctl, slapd, tmp_path, cache):
    ctl = make_ctl(basaltctl, tmp_path, directory_config(slapd, cache_ttl_s=30,
                                                         bind_connections=4))
    users = ["alice", "grace"]
    args = ["-n", "2000", "-c", "50"] + ([] if cache else ["--no-cache"])
    stats = ctl.bench(["alice"], USERS["alice"]["password"], *args)
    print(f"\nbench ({'cached' if cache else 'uncached'}): {stats.get('logins_per_s')} logins/s, "
          f"{stats.get('latency_ms p50')}")
    assert stats["rc"] == 0, stats
    assert stats.get("ok") == "2000", stats
    assert int(stats["logins_per_s"]) > 200, stats
    # Mixed outcomes in flight at once keep their own answers.
    stats = ctl.bench(users + ["mallory"], USERS["alice"]["password"], "-n", "600", "-c", "60")
    assert (stats.get("ok"), stats.get("bad_credentials")) == ("200", "400"), stats
