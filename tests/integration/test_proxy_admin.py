"""basalt-proxy's admin endpoint (token, metrics, sessions, kick) and the drain on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS
from wire import Conn, client_tls, metrics, wait_for, wait_sessions


LISTENERS = ("imap", "pop3")  # of every proxy here (make_proxy's listeners)


@pytest.fixture(scope="module")
def proxy(workdir, slapd, shard_a, shard_b, certs, proxy_binary):
    text = bc.proxy_config(slapd, {"a": shard_a, "b": shard_b}, {p: bc.free_port() for p in LISTENERS}, certs,
                           shard_hosts=SHARD_HOSTS)
    p = bc.Proxy(workdir / "proxy-admin", proxy_binary, text)
    p.start()
    yield p
    p.stop()


def admin(proxy, method: str, path: str, token: str | None = None) -> tuple[int, str]:
    host, port = proxy.admin_address
    headers = {"Authorization": f"Bearer {token if token is not None else proxy.admin_token}"}
    req = urllib.request.Request(f"http://{host}:{port}{path}", method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def logged_in(proxy, user, password, protocol="imap") -> Conn:
    c = Conn(proxy.port(protocol))
    c.line()
    if protocol == "imap":
        assert c.command("a", f"LOGIN {user} {password}")[-1].startswith("a OK")
    else:
        c.send(f"USER {user}\r\nPASS {password}\r\n")
        assert c.line() == "+OK" and c.line() == "+OK Logged in."
    return c


def test_the_token_is_required(proxy):
    assert admin(proxy, "GET", "/health", token="")[0] == 401
    assert admin(proxy, "GET", "/metrics", token="wrong-token-0123456789")[0] == 401
    assert admin(proxy, "GET", "/health") == (200, "ok\n")
    assert admin(proxy, "GET", "/nothing")[0] == 404
    assert admin(proxy, "POST", "/kick")[0] == 400


def test_metrics_count_logins_sessions_and_bytes(proxy):
    before = metrics(proxy)
    c = logged_in(proxy, "alice", "alice-secret")
    assert c.command("n", "NOOP")[-1].startswith("n OK")
    bad = Conn(proxy.port("imap"))
    bad.line()
    bad.command("a", "LOGIN alice wrong")
    m = metrics(proxy)
    assert m['basalt_logins_total{result="ok"}'] == before['basalt_logins_total{result="ok"}'] + 1
    assert m['basalt_logins_total{result="bad_credentials"}'] == before['basalt_logins_total{result="bad_credentials"}'] + 1
    assert m["basalt_sessions"] >= 2 and m["basalt_sessions_proxying"] >= 1
    assert m['basalt_relayed_bytes_total{direction="backend_to_client"}'] > before[
        'basalt_relayed_bytes_total{direction="backend_to_client"}']
    assert m['basalt_connections{protocol="imap",state="proxying"}'] >= 1
    assert m['basalt_connections{protocol="imap",state="pre_auth"}'] >= 1
    assert m["basalt_directory_seconds_count"] == before["basalt_directory_seconds_count"] + 2
    buckets = [v for k, v in m.items() if k.startswith("basalt_directory_seconds_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == m["basalt_directory_seconds_count"]
    c.close()
    bad.close()


def test_sessions_lists_every_workers_sessions_and_filters_by_user(proxy):
    assert wait_sessions(proxy, 0) == 0
    conns = [logged_in(proxy, "alice", "alice-secret") for _ in range(3)] + [logged_in(proxy, "carol", "carol-secret")]
    status, body = admin(proxy, "GET", "/sessions")
    assert status == 200
    sessions = json.loads(body)["sessions"]
    users = sorted(s["user"] for s in sessions if s["state"] == "proxying")
    assert users == ["alice", "alice", "alice", "carol"]
    alice = json.loads(admin(proxy, "GET", "/sessions?user=alice")[1])["sessions"]
    assert len(alice) == 3 and all(s["shard"] == "a" and s["protocol"] == "imap" for s in alice)
    for c in conns:
        c.close()


def test_kick_ends_a_users_sessions_with_a_goodbye(proxy):
    imap = logged_in(proxy, "bob", "bob-secret")
    pop = logged_in(proxy, "bob", "bob-secret", protocol="pop3")
    other = logged_in(proxy, "carol", "carol-secret")
    status, body = admin(proxy, "POST", "/kick?user=bob")
    assert status == 200 and json.loads(body) == {"user": "bob", "kicked": 2}
    assert imap.line() == "* BYE Disconnected by the administrator."
    assert imap.closed()
    assert pop.line() == "-ERR Disconnected by the administrator."
    assert pop.closed()
    assert other.command("n", "NOOP")[-1].startswith("n OK")
    assert json.loads(admin(proxy, "POST", "/kick?user=nobody")[1])["kicked"] == 0
    other.close()


def test_sigterm_drains_logged_in_sessions_then_says_bye(make_proxy):
    p = make_proxy(LISTENERS, proxy={"drain_timeout_s": 2})
    busy = logged_in(p, "alice", "alice-secret")
    idle = Conn(p.port("imap"))
    idle.line()
    start = time.monotonic()
    p.signal(signal.SIGTERM)
    assert idle.line() == "* BYE Server shutting down."  # not logged in: told at once
    assert idle.closed()
    with pytest.raises(OSError):
        for _ in range(20):  # no new connections while draining
            Conn(p.port("imap"), timeout=1).line()
            time.sleep(0.05)
    assert busy.command("n", "NOOP")[-1].startswith("n OK")  # still served while draining
    assert busy.line(timeout=5) == "* BYE Server shutting down."
    assert busy.closed()
    assert 1.8 <= time.monotonic() - start < 4.5
    assert wait_for(lambda: not p.running(), timeout=5)


def test_connections_per_address_are_limited(make_proxy):
    p = make_proxy(LISTENERS, proxy={"trusted_networks": []}, limits={"max_connections_per_ip": 3})
    kept = [Conn(p.port("imap"), source="127.0.0.5") for _ in range(3)]
    for c in kept:
        assert c.line().startswith("* OK ")
    extra = Conn(p.port("imap"), source="127.0.0.5")
    assert extra.line() == "* BYE Too many connections from your address."
    assert extra.closed()
    other = Conn(p.port("imap"), source="127.0.0.6")  # another address is not affected
    assert other.line().startswith("* OK ")
    kept[0].close()
    assert wait_for(lambda: Conn(p.port("imap"), source="127.0.0.5").line().startswith("* OK "), timeout=5)


def test_sessions_per_user_are_limited(make_proxy):
    p = make_proxy(LISTENERS, limits={"max_sessions_per_user": 2})
    first = [logged_in(p, "alice", "alice-secret") for _ in range(2)]
    c = Conn(p.port("imap"))
    c.line()
    assert c.command("a", "LOGIN alice alice-secret") == ["a NO [LIMIT] Too many sessions for this user."]
    pop = Conn(p.port("pop3"))
    pop.line()
    pop.send("USER alice\r\nPASS alice-secret\r\n")
    assert pop.line() == "+OK"
    assert pop.line() == "-ERR [IN-USE] Too many sessions for this user."
    assert logged_in(p, "carol", "carol-secret")  # other users are not affected
    first[0].command("z", "LOGOUT")
    assert wait_for(lambda: c.command("b", "LOGIN alice alice-secret")[-1].startswith("b OK"), timeout=5)


def test_failed_logins_are_answered_ever_later_per_address(make_proxy, certs):
    p = make_proxy(LISTENERS, proxy={"trusted_networks": [], "auth_failure_delay_ms": 200,
                                     "auth_failure_max_delay_ms": 800},
                   limits={"max_connections_per_ip": 0})
    timings = []
    for i in range(4):
        c = Conn(p.port("imap"), source="127.0.0.7")
        c.line()
        c.command("s", "STARTTLS")
        c.starttls(client_tls(certs["ca"]))
        start = time.monotonic()
        assert c.command("a", f"LOGIN user{i} wrong") == ["a NO [AUTHENTICATIONFAILED] Authentication failed."]
        timings.append(time.monotonic() - start)
    assert 0.2 <= timings[0] < 0.6 and 0.4 <= timings[1] < 0.9
    assert 0.8 <= timings[2] < 1.4 and 0.8 <= timings[3] < 1.4  # capped
    c = Conn(p.port("imap"), source="127.0.0.8")  # another client is not slowed down
    c.line()
    c.command("s", "STARTTLS")
    c.starttls(client_tls(certs["ca"]))
    start = time.monotonic()
    c.command("a", "LOGIN someone wrong")
    assert time.monotonic() - start < 0.6
    ok = Conn(p.port("imap"), source="127.0.0.8")  # nor are other sessions while one waits
    ok.line()
    ok.command("s", "STARTTLS")
    ok.starttls(client_tls(certs["ca"]))
    assert ok.command("n", "NOOP") == ["n OK NOOP completed."]


def test_sighup_reloads_config_and_certificates_without_dropping_an_idle_session(
        make_proxy, workdir, slapd, shard_a, shard_b, certs):
    cfg = bc.proxy_config_dict(slapd, {"a": shard_a, "b": shard_b}, {"imap": bc.free_port(), "imaps": bc.free_port()},
                               certs, shard_hosts=SHARD_HOSTS, proxy={"greeting": "Before reload."})
    p = make_proxy(config=bc.to_toml(cfg))
    idle = logged_in(p, "alice", "alice-secret")
    assert idle.command("s", "SELECT INBOX")[-1].startswith("s OK")
    idle.send("i IDLE\r\n")
    assert idle.line().startswith("+ ")

    new_certs = bc.make_certs(workdir / "certs-after-reload")
    cfg["proxy"]["greeting"] = "After reload."
    cfg["tls"] = {"certificate": new_certs["cert"], "private_key": new_certs["key"]}
    p.write_config(cfg)
    p.reload()
    assert wait_for(lambda: "configuration reloaded" in p.log_text())
    fresh = Conn(p.port("imap"))
    assert fresh.line().endswith("] After reload.")
    tls_new = Conn(p.port("imaps"), tls=client_tls(new_certs["ca"]))  # the new certificate is served
    assert tls_new.line().startswith("* OK ")
    with pytest.raises(Exception):
        Conn(p.port("imaps"), tls=client_tls(certs["ca"])).line()

    shard_a.deliver("alice", bc.make_message("during reload"))
    assert "EXISTS" in idle.line(timeout=10)  # the IDLE session lived through the reload
    idle.send("DONE\r\n")
    assert idle.until_tag("i")[-1].startswith("i OK")

    p.write_config("this is [not toml")
    p.reload()
    assert wait_for(lambda: "reload failed, keeping the running configuration" in p.log_text())
    assert Conn(p.port("imap")).line().endswith("] After reload.")


def basaltctl(basalt_binary_dir, *args) -> tuple[int, str]:
    import subprocess
    r = subprocess.run([str(basalt_binary_dir / "tools" / "basaltctl" / "basaltctl"), *args],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_basaltctl_sessions_and_kick_across_two_proxies(make_proxy, basalt_binary_dir, proxy):
    other = make_proxy(LISTENERS, admin_token=proxy.admin_token)
    conns = [logged_in(proxy, "dave", "dave-secret"), logged_in(other, "dave", "dave-secret")]
    endpoints = []
    for p in (proxy, other):
        endpoints += ["--proxy", f"{p.admin_address[0]}:{p.admin_address[1]}"]
    rc, out = basaltctl(basalt_binary_dir, "sessions", "--user", "dave", "--json", *endpoints,
                        "--token", proxy.admin_token)
    assert rc == 0, out
    listed = json.loads(out)
    assert sorted(s["proxy"] for s in listed) == sorted(endpoints[1::2])
    rc, out = basaltctl(basalt_binary_dir, "kick", "dave", *endpoints, "--token", proxy.admin_token)
    assert rc == 0 and "total: 2" in out, out
    for c in conns:
        assert c.line() == "* BYE Disconnected by the administrator."
    rc, out = basaltctl(basalt_binary_dir, "kick", "dave", *endpoints, "--token", "wrong-token-0123456789")
    assert rc == 2 and "HTTP 401" in out
    rc, out = basaltctl(basalt_binary_dir, "sessions", "--proxy", "127.0.0.1:1", "--token", "x" * 16)
    assert rc == 2 and "no answer" in out


def make_named_cert(directory, name: str) -> dict:
    """A self-signed certificate for `name` (its own CA)."""
    import subprocess
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    return {"cert": str(cert), "key": str(key), "ca": str(cert)}


def test_sni_picks_the_certificate_for_the_requested_name(make_proxy, workdir, slapd, shard_a, shard_b, certs):
    other = make_named_cert(workdir / "sni-other", "mail.example.test")
    cfg = bc.proxy_config_dict(slapd, {"a": shard_a, "b": shard_b}, {"imaps": bc.free_port()}, certs,
                               shard_hosts=SHARD_HOSTS)
    cfg["tls"]["sni"] = [{"names": ["mail.example.test", "*.wild.test"], "certificate": other["cert"],
                          "private_key": other["key"]}]
    p = make_proxy(config=bc.to_toml(cfg))
    import ssl
    def greet(name, ca):
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection((bc.LOOPBACK, p.port("imaps")), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname=name)
        data = s.recv(200)
        s.close()
        return data
    assert greet("mail.example.test", other["ca"]).startswith(b"* OK ")
    assert greet("localhost", certs["ca"]).startswith(b"* OK ")  # the default certificate
    with pytest.raises(ssl.SSLError):
        greet("localhost", other["ca"])


def test_privileges_are_dropped_after_binding(make_proxy):
    import os
    import pwd
    if os.geteuid() != 0:
        pytest.fail("this test needs root (CI runs as root): it checks the switch away from it")
    nobody = pwd.getpwnam("nobody")
    p = make_proxy(LISTENERS, proxy={"user": "nobody"})
    status = open(f"/proc/{p.pid}/status").read()
    uid_line = next(l for l in status.splitlines() if l.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4
    assert logged_in(p, "alice", "alice-secret")
    assert wait_for(lambda: "running as user nobody" in p.log_text())  # logs are batched (100 ms)
