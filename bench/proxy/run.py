#!/usr/bin/python3
"""Basalt proxy benchmark: basalt-proxy against direct access, a Dovecot proxy and nginx.

One command starts everything on 127.0.0.x with ports picked at run time, under a work
directory in /tmp, and stops it all at the end (also on Ctrl-C or a failure):

  slapd                 N users (10,000 by default), uid=userNNNNN, mailHost = their shard's IP
  Dovecot shards a, b   users spread over both, one message each (Maildir); user "bigmail" on
                        shard a has one 10 MB message. Master user "proxy".
  (a) direct            the client talks to the user's shard itself (baseline)
  (b) basalt            basalt-proxy, LDAP search + bind, master-user login to the shard
  (c) dovecot           a Dovecot 2.3 proxy instance: LDAP passdb (auth_bind), proxy=y,
                        host= from mailHost, master= / pass= master-user login to the shard
  (d) nginx             nginx mail proxy + auth_http service (bench/proxy/authhttp.cc: LDAP
                        search + bind per request, persistent connections), master login as
                        user*proxy

Targets are measured in alternating rounds (a b c d a b c d ...), each metric in turn:
  IMAP logins at 50 concurrent clients (connect, LOGIN, SELECT INBOX, LOGOUT): logins/s,
  p50/p99, errors and the proxy's CPU per login; sequential logins (unloaded latency);
  10 MB FETCH BODY.PEEK[] on one and on four streams; POP3 logins at 50 clients. Then, per
  proxy, N idle authenticated sessions: (RSS of all its processes after - before) / N.

Usage: bench/proxy/run.py [--quick] [--connections N] [--rounds R] [--users N] ...
Needs slapd, Dovecot, g++, libldap/libssl headers (scripts/install-deps.sh); installs nginx-light
and libnginx-mod-mail with apt-get when they are missing. Debian's python3, stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tools" / "cluster"))

import basalt_cluster as bc  # noqa: E402

PASSWORD = "bench-pass"
BIG_USER = "bigmail"
BIG_SIZE = 10 * 1024 * 1024
SHARD_IPS = {"a": "127.0.2.1", "b": "127.0.2.2"}
CLIENT_SOURCES = [f"127.0.3.{i}" for i in range(1, 17)]
TARGETS = ["direct", "basalt", "dovecot", "nginx"]
PROXIES = ["basalt", "dovecot", "nginx"]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The anchors (same machine kind) and Basalt's targets.
ANCHORS = {
    ("nginx", "cpu_login"): "0.215 (+0.09 helper)",
    ("nginx", "added_latency"): "0.65",
    ("nginx", "idle_kb"): "9.5",
    ("nginx", "relay1"): "0.40",
    ("nginx", "relay4"): "0.73-0.80",
    ("dovecot", "cpu_login"): "0.51",
    ("dovecot", "added_latency"): "1.3",
    ("dovecot", "idle_kb"): "34",
    ("dovecot", "relay1"): "0.50",
}
TARGETS_BASALT = {  # metric: (comparison, limit, text)
    "cpu_login": ("<=", 0.15, "<= 0.15"),
    "added_latency": ("<=", 0.5, "<= 0.5"),
    "idle_kb": ("<=", 5.0, "<= 5"),
    "relay1": (">=", 0.9, ">= 0.9"),
    "cpu_mb": ("<=", 0.5, "<= 0.5"),
    "errors": ("<=", 0, "0"),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- processes


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pgid: int) -> float:
    """CPU time of a process group: every live thread's run time (schedstat, ns) plus the
    children its processes have reaped (cutime + cstime), so processes that come and go
    (Dovecot's) are counted too."""
    total = 0.0
    for pid in group_pids(pgid):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rfind(")") + 2:].split()
            total += (int(fields[13]) + int(fields[14])) / CLK_TCK  # cutime, cstime
        except (OSError, IndexError, ValueError):
            continue
    return total


def rss_kb(pgid: int) -> tuple[int, int]:
    """(sum of VmRSS, number of processes) of a process group, in kB."""
    total = n = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        n += 1
                        break
        except OSError:
            continue
    return total, n


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs; not idle, not iowait)."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def established_to(ports: set[int]) -> int:
    """ESTABLISHED TCP connections (either end) on one of these local ports."""
    n = 0
    for name in ("/proc/net/tcp",):
        with open(name) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] != "01":
                    continue
                if int(parts[1].rsplit(":", 1)[1], 16) in ports:
                    n += 1
    return n


class Helper(bc.Daemon):
    """A foreground process of ours (auth_http service, nginx) in its own process group."""

    def __init__(self, name: str, cmd: list[str], workdir: Path, ports: list[int]) -> None:
        super().__init__()
        self.name = name
        self.cmd = cmd
        self.workdir = workdir
        self.ports = ports

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn(self.cmd, self.workdir / f"{self.name}.out", self.workdir)
        self._wait_ports(self.ports)


# --------------------------------------------------------------------------- shards


class BenchShard(bc.Dovecot):
    """The harness's Dovecot shard plus what the benchmark needs: IMAP/POP3 listeners on the
    shard's own loopback IP with ports common to all shards (so mailHost can be just an IP,
    which is what Dovecot's proxy host= wants), master login with LOGIN "user*proxy" (nginx),
    and imap/pop3 process settings per phase:

      login: client_limit 1 (Dovecot's recommended setting), processes reused for 100
             connections (service_count = 100, its performance tuning advice)
      idle:  client_limit 100, so that 10,000 idle sessions need ~100 processes, not 10,000
    """

    def __init__(self, *args, ip: str, imap_port: int, pop3_port: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ip = ip
        self.bench_imap_port = imap_port
        self.bench_pop3_port = pop3_port
        self.mode = "login"

    def config_text(self) -> str:
        text = super().config_text()
        text = text.replace(
            "  inet_listener imaps {",
            f"  inet_listener imap_bench {{\n    address = {self.ip}\n    port = {self.bench_imap_port}\n  }}\n"
            "  inet_listener imaps {", 1)
        text = text.replace(
            "  inet_listener pop3s {",
            f"  inet_listener pop3_bench {{\n    address = {self.ip}\n    port = {self.bench_pop3_port}\n  }}\n"
            "  inet_listener pop3s {", 1)
        text = text.replace("listen = 127.0.0.1\n", f"listen = 127.0.0.1 {self.ip}\n", 1)
        if self.mode == "idle":
            imap = ("service imap {\n  process_limit = 1000\n  client_limit = 100\n"
                    "  service_count = 0\n  vsz_limit = 2G\n}\n")
        else:
            imap = ("service imap {\n  process_limit = 1000\n  client_limit = 1\n"
                    "  service_count = 100\n  process_min_avail = 4\n}\n")
        pop3 = ("service pop3 {\n  process_limit = 1000\n  client_limit = 1\n"
                "  service_count = 100\n  process_min_avail = 2\n}\n")
        text = re.sub(r"service imap \{\n  process_limit = 1000\n\}\n", imap, text, count=1)
        text = re.sub(r"service pop3 \{\n  process_limit = 1000\n\}\n", pop3, text, count=1)
        text += ("auth_master_user_separator = *\n"
                 "mail_max_userip_connections = 100\n"
                 "default_vsz_limit = 1G\n")
        return text

    def set_mode(self, mode: str) -> None:
        """Rewrites the config and reloads Dovecot (SIGHUP): new processes get the settings."""
        self.mode = mode
        self.conf_path.write_text(self.config_text())
        self.signal(signal.SIGHUP)
        time.sleep(1.5)


def write_maildirs(shard: BenchShard, users: list[str], big: bytes | None) -> None:
    """One small message per user (and the 10 MB one for BIG_USER), written straight into
    Maildir/cur: much faster than LMTP for 10,000 users, and what Dovecot reads anyway."""
    uid, gid, _ = bc.mail_account()
    root = os.geteuid() == 0
    now = int(time.time())
    for i, user in enumerate(users):
        home = shard.mail_dir / user
        md = home / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        if user == BIG_USER and big is not None:
            body = big
        else:
            body = bc.make_message(f"Welcome {user}", f"Hello {user}, this is shard {shard.name}.\n",
                                   to=f"{user}@example.org").replace(b"\r\n", b"\n")
        (md / "cur" / f"{now}.M{i}P1.bench:2,S").write_bytes(body)
        if root:
            for dirpath, dirnames, filenames in os.walk(home):
                os.chown(dirpath, uid, gid)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), uid, gid)


def big_message() -> bytes:
    """A ~10 MB text/plain message with base64-looking lines (LF line ends, as in Maildir)."""
    head = bc.make_message("The 10 MB message", "", to=f"{BIG_USER}@example.org").replace(b"\r\n", b"\n")
    line_len = 77
    rng = secrets.token_bytes(57 * 1024)
    import base64
    pool = base64.b64encode(rng)
    lines = []
    need = BIG_SIZE - len(head)
    i = 0
    while need > 0:
        chunk = pool[(i * 76) % (len(pool) - 76):][:76] + b"\n"
        lines.append(chunk)
        need -= line_len
        i += 1
    return head + b"".join(lines)


# --------------------------------------------------------------------------- Dovecot proxy


class DovecotProxy(bc.Daemon):
    """Dovecot 2.3 as an IMAP/POP3 proxy: LDAP passdb with auth binds; the DN lookup returns
    proxy=y, host=mailHost and master=/pass= for the master-user login to the shard."""

    name = "dovecot-proxy"

    def __init__(self, workdir: Path, slapd: bc.Slapd, shard_imap: int, shard_pop3: int,
                 master_user: str, master_password: str, client_limit: int) -> None:
        super().__init__()
        self.workdir = workdir
        self.slapd = slapd
        self.shard_imap, self.shard_pop3 = shard_imap, shard_pop3
        self.master_user, self.master_password = master_user, master_password
        self.client_limit = client_limit
        self.imap_port = bc.free_port()
        self.pop3_port = bc.free_port()
        self.conf_path = workdir / "dovecot.conf"
        self.log_path = workdir / "dovecot.log"

    def config_text(self) -> str:
        w = self.workdir
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        login_user = bc.existing_user("dovenull", "nobody") if root else me
        no_chroot = "" if root else "  chroot =\n"
        import grp
        group = grp.getgrgid(os.getegid()).gr_name
        uid, gid, _ = bc.mail_account()

        def login_service(protocol: str, port: int) -> str:
            # The plaintext listener on `port`; the TLS one ({protocol}s) is switched off.
            return f"""service {protocol}-login {{
{no_chroot}  service_count = 0
  process_min_avail = 2
  process_limit = 8
  client_limit = {self.client_limit}
  inet_listener {protocol} {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener {protocol}s {{
    port = 0
  }}
}}
"""

        return f"""# generated by bench/proxy/run.py: Dovecot as a proxy in front of the shards
protocols = imap pop3
listen = 127.0.0.1
instance_name = basalt-bench-dproxy
base_dir = {w}/run
state_dir = {w}/state
log_path = {self.log_path}
auth_mechanisms = plain login
disable_plaintext_auth = no
ssl = no
login_trusted_networks = 127.0.0.0/8
default_internal_user = {me}
default_internal_group = {group}
default_login_user = {login_user}
default_process_limit = 1000
default_client_limit = {max(10000, self.client_limit * 2)}
default_vsz_limit = 2G
first_valid_uid = 1
first_valid_gid = 0
auth_failure_delay = 0

passdb {{
  driver = ldap
  args = {w}/dovecot-ldap.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home=/nonexistent/%u
}}

service anvil {{
{no_chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{login_service("imap", self.imap_port)}{login_service("pop3", self.pop3_port)}"""

    def ldap_text(self) -> str:
        s = self.slapd
        # %{ldap:mailHost} is the shard's IP; both shards use the same ports.
        return f"""uris = {s.uri}
dn = {s.service_dn}
dnpass = {s.service_password}
auth_bind = yes
ldap_version = 3
base = {s.people_dn}
scope = subtree
pass_filter = (&(objectClass=inetOrgPerson)(uid=%u))
pass_attrs = uid=user, mailHost=host, =proxy=y, =port=%{{if;%s;eq;pop3;{self.shard_pop3};{self.shard_imap}}}, =master={self.master_user}, =pass={self.master_password}
"""

    def start(self) -> None:
        for d in ("run", "state"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text())
        ldap_conf = self.workdir / "dovecot-ldap.conf.ext"
        ldap_conf.write_text(self.ldap_text())
        ldap_conf.chmod(0o600)
        self._spawn([bc.DOVECOT, "-c", str(self.conf_path), "-F"], self.workdir / "dovecot.out",
                    self.workdir)
        self._wait_ports([self.imap_port, self.pop3_port])


# --------------------------------------------------------------------------- nginx


def ensure_packages(allow_install: bool) -> str:
    """Installs what the comparison needs and Basalt does not (so scripts/install-deps.sh does
    not have it): nginx-light + libnginx-mod-mail, and dovecot-ldap for the Dovecot proxy.
    Returns the nginx binary."""
    checks = {"nginx-light": lambda: bool(shutil.which("nginx") or Path("/usr/sbin/nginx").exists()),
              "libnginx-mod-mail": lambda: Path("/usr/lib/nginx/modules/ngx_mail_module.so").exists(),
              "dovecot-ldap": lambda: Path("/usr/lib/dovecot/modules/auth/libauthdb_ldap.so").exists()}
    missing = [pkg for pkg, ok in checks.items() if not ok()]
    if missing:
        if not allow_install:
            raise SystemExit(f"missing {', '.join(missing)} (apt-get install them), and --no-install was given")
        log(f"installing {' '.join(missing)} (apt-get)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        policy = Path("/usr/sbin/policy-rc.d")
        created = False
        if not policy.exists():  # do not let the packages start system services (nginx on :80)
            subprocess.run(sudo + ["sh", "-c", "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && "
                                   "chmod 755 /usr/sbin/policy-rc.d"], check=True)
            created = True
        try:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            cmd = sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
            if subprocess.run(cmd, env=env).returncode != 0:
                subprocess.run(sudo + ["apt-get", "update", "-q"], env=env, check=True)
                subprocess.run(cmd, env=env, check=True)
        finally:
            if created:
                subprocess.run(sudo + ["rm", "-f", str(policy)])
        still = [pkg for pkg, ok in checks.items() if not ok()]
        if still:
            raise SystemExit(f"still missing after apt-get: {', '.join(still)}")
    return shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_config(workdir: Path, imap_port: int, pop3_port: int, auth_port: int, nofile: int) -> str:
    module = "/usr/lib/nginx/modules/ngx_mail_module.so"
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""# generated by bench/proxy/run.py
{user}load_module {module};
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile {nofile};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
  worker_connections {nofile - 100};
}}
mail {{
  server_name bench.local;
  auth_http 127.0.0.1:{auth_port}/auth;
  proxy_pass_error_message on;
  imap_capabilities IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE;
  server {{
    listen 127.0.0.1:{imap_port};
    protocol imap;
  }}
  server {{
    listen 127.0.0.1:{pop3_port};
    protocol pop3;
    pop3_auth plain;
  }}
}}
"""


# --------------------------------------------------------------------------- building


def build_tools(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    tools = {"loadgen": (HERE / "loadgen.cc", ["-lssl", "-lcrypto"]),
             "authhttp": (HERE / "authhttp.cc", ["-lldap", "-llber", "-lpthread"])}
    paths = {}
    for name, (src, libs) in tools.items():
        dst = out / name
        bc.run(["g++", "-O2", "-std=c++20", "-o", str(dst), str(src), *libs], timeout=300)
        paths[name] = dst
    return paths


def git_rev() -> str:
    def out(cmd):
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        return p.stdout.strip()
    rev = out(["git", "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "status", "--porcelain", "--untracked-files=no"])
    return rev + (" + uncommitted changes" if dirty else "")


def ensure_proxy(build_dir: Path, binary: str | None) -> tuple[Path, str]:
    """basalt-proxy to measure and what it was built from. Without --proxy-binary the build
    directory is brought up to date first (an incremental build: usually nothing to do)."""
    if binary:
        path = Path(binary).resolve()
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        return path, f"{path} (given with --proxy-binary, built {built}; work tree now at {git_rev()})"
    rev = git_rev()
    log(f"building basalt-proxy in {build_dir} ({rev})")
    ok = True
    if not (build_dir / "build.ninja").exists() and not (build_dir / "Makefile").exists():
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        ok = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build_dir), *gen,
                             "-DCMAKE_BUILD_TYPE=Release"]).returncode == 0
    if ok:
        ok = subprocess.run(["cmake", "--build", str(build_dir), "-j2", "--target", "basalt-proxy"]).returncode == 0
    found = bc.find_proxy_binary(build_dir)
    if not found:
        raise SystemExit(f"basalt-proxy could not be built in {build_dir}")
    if not ok:
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.stat().st_mtime))
        log(f"warning: the build failed; measuring the existing binary (built {built})")
        return found, f"{found}: the build of {rev} failed, existing binary built {built} measured"
    return found, f"{rev}, built as {found}"


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="basalt-bench-", dir="/tmp"))
        self.workdir.chmod(0o711)
        self.daemons: list[bc.Daemon] = []
        self.children: list[subprocess.Popen] = []
        self.results: dict = {t: {} for t in TARGETS + ["basalt-tls"]}
        self.samples: dict = {}
        self.loads: list[float] = [loadavg()]
        self.user_offset = 0
        self.started = time.time()
        self.finished = False
        self.others: list[float] = []

    # ---- setup

    def setup(self) -> None:
        a = self.args
        self.proxy_binary, self.proxy_build = ensure_proxy(Path(a.build_dir).resolve(), a.proxy_binary)
        self.nginx = ensure_packages(not a.no_install)
        log(f"work dir {self.workdir}")
        self.tools = build_tools(self.workdir / "bin")
        self.certs = bc.make_certs(self.workdir / "certs")

        imap_port, pop3_port = self.common_ports(2)
        self.shard_imap, self.shard_pop3 = imap_port, pop3_port
        users = bc.bench_users(a.users, PASSWORD)
        for u in users:
            u["mail_host"] = SHARD_IPS["a" if u["mail_host"].startswith("a") else "b"]
        users.append(dict(uid=BIG_USER, password=PASSWORD, mail_host=SHARD_IPS["a"], status="active"))
        self.users = users
        log(f"slapd with {len(users)} users")
        self.slapd = bc.Slapd(self.workdir / "slapd", users, debug="0")
        self.daemons.append(self.slapd)
        self.slapd.start()

        big = big_message()
        self.shards: dict[str, BenchShard] = {}
        master_password = "master-" + secrets.token_hex(8)
        for name, ip in SHARD_IPS.items():
            mine = {u["uid"]: u["password"] for u in users if u["mail_host"] == ip}
            shard = BenchShard(self.workdir / f"shard-{name}", name, mine,
                               master_password=master_password, ip=ip,
                               imap_port=imap_port, pop3_port=pop3_port)
            log(f"shard {name} ({ip}): {len(mine)} users, writing their Maildirs")
            write_maildirs(shard, list(mine), big)
            self.daemons.append(shard)
            shard.start()
            self.shards[name] = shard
        self.master_user = "proxy"
        self.master_password = master_password

        uf = self.workdir / "users.txt"
        uf.write_text("".join(f"{u['uid']} {u['password']} {u['mail_host']}\n"
                              for u in users if u["uid"] != BIG_USER))
        self.users_file = uf

        self.ports: dict[str, dict[str, int]] = {"direct": {"imap": imap_port, "pop3": pop3_port}}
        self.groups: dict[str, int] = {}
        self.start_basalt()
        self.start_dovecot_proxy()
        self.start_nginx()

    def common_ports(self, n: int) -> list[int]:
        ports: list[int] = []
        while len(ports) < n:
            p = bc.free_port()
            if p not in ports and all(bc.port_is_free(p, ip) for ip in SHARD_IPS.values()):
                ports.append(p)
        return ports

    def start_basalt(self) -> None:
        a = self.args
        ports = {"imap": bc.free_port(), "imaps": bc.free_port(), "pop3": bc.free_port()}
        cfg = bc.proxy_config_dict(self.slapd, self.shards, ports, self.certs,
                                   proxy={"workers": a.basalt_workers, **getattr(self, "proxy_overrides", {})},
                                   log={"level": a.basalt_log_level})
        cfg["directory"]["cache_ttl_s"] = a.basalt_cache_ttl
        cfg["shard"] = [{
            "name": name, "hosts": [ip],
            "imap": f"{ip}:{self.shard_imap}", "pop3": f"{ip}:{self.shard_pop3}",
            "login": "master", "master_user": self.master_user,
            "master_password": self.master_password,
        } for name, ip in SHARD_IPS.items()]
        self.basalt = bc.Proxy(self.workdir / "basalt", self.proxy_binary, bc.to_toml(cfg))
        self.daemons.append(self.basalt)
        self.basalt.start()
        self.ports["basalt"] = ports
        self.ports["basalt-tls"] = {"imap": ports["imaps"]}
        self.groups["basalt"] = self.basalt.pid
        self.groups["basalt-tls"] = self.basalt.pid
        log(f"basalt-proxy on imap {ports['imap']}, imaps {ports['imaps']}, pop3 {ports['pop3']}")

    def start_dovecot_proxy(self) -> None:
        per_process = max(1000, self.args.connections // 2 + 500)
        self.dproxy = DovecotProxy(self.workdir / "dovecot-proxy", self.slapd, self.shard_imap,
                                   self.shard_pop3, self.master_user, self.master_password,
                                   per_process)
        self.daemons.append(self.dproxy)
        self.dproxy.start()
        self.ports["dovecot"] = {"imap": self.dproxy.imap_port, "pop3": self.dproxy.pop3_port}
        self.groups["dovecot"] = self.dproxy.pid
        log(f"Dovecot proxy on imap {self.dproxy.imap_port}, pop3 {self.dproxy.pop3_port}")

    def start_nginx(self) -> None:
        auth_port = bc.free_port()
        s = self.slapd
        self.auth = Helper("authhttp", [
            str(self.tools["authhttp"]), "--port", str(auth_port), "--threads", str(self.args.auth_threads),
            "--ldap-uri", s.uri, "--bind-dn", s.service_dn, "--bind-password", s.service_password,
            "--base", s.people_dn, "--master-user", self.master_user,
            "--master-password", self.master_password,
            "--imap-port", str(self.shard_imap), "--pop3-port", str(self.shard_pop3)],
            self.workdir / "authhttp", [auth_port])
        self.daemons.append(self.auth)
        self.auth.start()
        imap, pop3 = bc.free_port(), bc.free_port()
        wd = self.workdir / "nginx"
        wd.mkdir(parents=True, exist_ok=True)
        conf = wd / "nginx.conf"
        conf.write_text(nginx_config(wd, imap, pop3, auth_port, self.args.nofile))
        self.nginx_proc = Helper("nginx", [self.nginx, "-c", str(conf), "-p", str(wd)], wd, [imap, pop3])
        self.daemons.append(self.nginx_proc)
        self.nginx_proc.start()
        self.ports["nginx"] = {"imap": imap, "pop3": pop3}
        self.groups["nginx"] = self.nginx_proc.pid
        self.groups["authhttp"] = self.auth.pid
        log(f"nginx on imap {imap}, pop3 {pop3}; auth_http on {auth_port}")

    def stop(self) -> None:
        for p in self.children:
            if p.poll() is None:
                p.kill()
                p.wait()
        bc.stop_all(reversed(self.daemons))
        if self.finished and not self.args.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif not self.finished:
            print(f"work dir kept for the logs: {self.workdir}", file=sys.stderr)

    # ---- load generator

    def loadgen(self, mode: str, target: str, *extra: str, timeout: float = 600) -> dict:
        proto = "imap"
        if "--proto" in extra:
            proto = extra[extra.index("--proto") + 1]
        port = self.ports[target][proto if target != "basalt-tls" else "imap"]
        cmd = [str(self.tools["loadgen"]), mode, "--port", str(port), "--host", "127.0.0.1", *extra]
        if target == "direct":
            cmd.append("--per-user-host")
            if mode == "fetch":
                cmd[cmd.index("--host") + 1] = SHARD_IPS["a"]
        if target == "basalt-tls":
            cmd.append("--tls")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if p.returncode not in (0, 1) or not p.stdout.strip():
            raise RuntimeError(f"loadgen {mode} {target} failed ({p.returncode}): {p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def next_offset(self, n: int) -> int:
        off = self.user_offset
        self.user_offset = (self.user_offset + n) % max(1, self.args.users)
        return off

    def add(self, target: str, metric: str, value) -> None:
        self.samples.setdefault(target, {}).setdefault(metric, []).append(value)

    def own_cpu(self) -> float:
        """CPU time of everything this benchmark runs: its daemons (and their reaped
        children), the load generators it waited for, and itself."""
        total = sum(cpu_seconds(d.pid) for d in self.daemons if d.running())
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            total += ru.ru_utime + ru.ru_stime
        return total

    def others_mark(self) -> tuple[float, float, float]:
        return time.monotonic(), machine_busy_seconds(), self.own_cpu()

    def others_since(self, mark: tuple[float, float, float]) -> float:
        """Average number of CPUs other jobs on the machine kept busy since mark."""
        t0, busy0, own0 = mark
        t1, busy1, own1 = self.others_mark()
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / max(1e-9, t1 - t0))

    def cpu_of(self, target: str) -> dict[str, float]:
        out = {}
        if target in self.groups:
            out["proxy"] = cpu_seconds(self.groups[target])
        if target == "nginx":
            out["helper"] = cpu_seconds(self.groups["authhttp"])
        return out

    # ---- metrics

    def warm_up(self) -> None:
        a = self.args
        log(f"warm-up: every user logs in to its shard once ({a.users} logins)")
        r = self.loadgen("login", "direct", "--users", str(self.users_file), "--concurrency", "20",
                         "--count", str(a.users), "--sources", ",".join(CLIENT_SOURCES))
        log(f"  {r['ok']} ok, {r['errors']} errors, {r['rate']:.0f}/s")
        if r["errors"]:
            log(f"  warm-up errors: {r['error_samples']}")
        for t in PROXIES:
            r = self.loadgen("login", t, "--users", str(self.users_file), "--concurrency", "10",
                             "--duration", "1", "--offset", str(self.next_offset(0)),
                             "--sources", ",".join(CLIENT_SOURCES))
            log(f"  {t}: {r['ok']} ok, {r['errors']} errors {r['error_samples'] if r['errors'] else ''}")
        for t in TARGETS:
            r = self.loadgen("fetch", t, "--user", BIG_USER, "--password", PASSWORD,
                             "--streams", "1", "--fetches", "1")
            log(f"  fetch via {t}: {r['bytes']} bytes, {r['errors']} errors")

    def login_run(self, target: str, proto: str, concurrency: int, duration: float | None,
                  count: int | None) -> dict:
        extra = ["--users", str(self.users_file), "--concurrency", str(concurrency),
                 "--proto", proto, "--sources", ",".join(CLIENT_SOURCES)]
        n = count or int(concurrency * 200)
        extra += ["--offset", str(self.next_offset(n))]
        extra += ["--duration", str(duration)] if duration else ["--count", str(count)]
        cpu0 = self.cpu_of(target)
        r = self.loadgen("login", target, *extra)
        cpu1 = self.cpu_of(target)
        r["cpu"] = {k: cpu1[k] - cpu0[k] for k in cpu0}
        return r

    def round(self, i: int) -> None:
        a = self.args
        log(f"round {i + 1}/{a.rounds} (load {loadavg():.2f})")
        self.loads.append(loadavg())
        mark = self.others_mark()
        for t in TARGETS:   # 50 concurrent IMAP logins
            r = self.login_run(t, "imap", a.concurrency, a.duration, None)
            self.add(t, "imap50", r)
            cpu = " ".join(f"{k} {1000 * v / max(1, r['ok']):.3f} ms/login" for k, v in r["cpu"].items())
            log(f"  imap x{a.concurrency} {t:8s} {r['rate']:8.0f}/s p50 {r['p50_ms']:.2f} "
                f"p99 {r['p99_ms']:.2f} ms, {r['errors']} errors {cpu}")
        for t in TARGETS:   # sequential IMAP logins
            r = self.login_run(t, "imap", 1, None, a.seq)
            self.add(t, "seq", r)
            log(f"  imap x1  {t:8s} p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms, {r['errors']} errors")
        for streams, fetches, key in ((1, a.fetches, "fetch1"), (4, max(1, a.fetches // 2), "fetch4")):
            for t in TARGETS:
                cpu0 = self.cpu_of(t)
                r = self.loadgen("fetch", t, "--user", BIG_USER, "--password", PASSWORD,
                                 "--streams", str(streams), "--fetches", str(fetches))
                cpu1 = self.cpu_of(t)
                r["cpu"] = {k: cpu1[k] - cpu0[k] for k in cpu0}
                r.setdefault("mb_per_s", 0.0)
                if r.get("setup_failed"):
                    log(f"  fetch x{streams} {t}: login failed: {r['error_samples']}")
                self.add(t, key, r)
                cpu = " ".join(f"{k} {v * 1e9 / max(1, r['bytes']):.3f} ms/MB" for k, v in r["cpu"].items())
                log(f"  fetch x{streams} {t:8s} {r['mb_per_s']:8.0f} MB/s, {r['errors']} errors {cpu}")
        # basalt with a TLS client (IMAPS), the shard plain: reported, no anchor
        cpu0 = self.cpu_of("basalt-tls")
        r = self.loadgen("fetch", "basalt-tls", "--user", BIG_USER, "--password", PASSWORD,
                         "--streams", "1", "--fetches", str(a.fetches))
        r["cpu"] = {k: self.cpu_of("basalt-tls")[k] - cpu0[k] for k in cpu0}
        r.setdefault("mb_per_s", 0.0)
        self.add("basalt-tls", "fetch1", r)
        log(f"  fetch x1 basalt-tls {r['mb_per_s']:8.0f} MB/s, {r['errors']} errors "
            f"proxy {r['cpu']['proxy'] * 1e9 / max(1, r['bytes']):.3f} ms/MB")
        if not a.no_pop3:
            for t in TARGETS:
                r = self.login_run(t, "pop3", a.concurrency, a.duration / 2, None)
                self.add(t, "pop3", r)
                cpu = " ".join(f"{k} {1000 * v / max(1, r['ok']):.3f} ms/login" for k, v in r["cpu"].items())
                log(f"  pop3 x{a.concurrency} {t:8s} {r['rate']:8.0f}/s p50 {r['p50_ms']:.2f} ms, "
                    f"{r['errors']} errors {cpu}")
        other = self.others_since(mark)
        self.others.append(other)
        log(f"  other jobs on the machine used {other:.2f} of {os.cpu_count()} CPUs during this round")

    def idle(self) -> None:
        a = self.args
        n = a.connections
        log(f"idle sessions: {n} per proxy; shards switch to client_limit 100")
        for shard in self.shards.values():
            shard.set_mode("idle")
        order = ["basalt", "basalt-tls", "dovecot", "nginx"]
        for rnd in range(a.idle_rounds):
            for t in order:
                self.loads.append(loadavg())
                self.idle_one(t, n)
        for shard in self.shards.values():
            shard.set_mode("login")

    def idle_one(self, target: str, n: int) -> None:
        pg = self.groups[target]
        shard_ports = {self.shard_imap}
        self.wait_quiet(shard_ports)
        time.sleep(1)
        before, nproc0 = rss_kb(pg)
        cmd = [str(self.tools["loadgen"]), "idle", "--host", "127.0.0.1",
               "--port", str(self.ports[target]["imap"]), "--users", str(self.users_file),
               "--count", str(n), "--concurrency", "100", "--offset", str(self.next_offset(n)),
               "--timeout", "60", "--sources", ",".join(CLIENT_SOURCES)]
        if target == "basalt-tls":
            cmd.append("--tls")
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.children.append(p)
        try:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"idle loadgen for {target} died ({p.wait()})")
            r = json.loads(line)
            time.sleep(2)
            after, nproc1 = rss_kb(pg)
            helper = None
            if target == "nginx":
                helper = rss_kb(self.groups["authhttp"])[0]
            r.update(rss_before_kb=before, rss_after_kb=after, procs_before=nproc0, procs_after=nproc1,
                     per_session_kb=(after - before) / max(1, r["ready"]), helper_rss_kb=helper)
            self.add(target, "idle", r)
            log(f"  {target:10s} {r['ready']}/{n} sessions ({r['errors']} errors, {r['elapsed']:.1f} s): "
                f"RSS {before} -> {after} kB over {nproc0}->{nproc1} processes = "
                f"{r['per_session_kb']:.2f} kB/session")
            if r["errors"]:
                log(f"    errors: {r['error_kinds']} {r['error_samples']}")
            p.stdin.write("close\n")
            p.stdin.flush()
            p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            self.children.remove(p)

    def wait_quiet(self, ports: set[int], limit: int = 50, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if established_to(ports) <= limit:
                return
            time.sleep(0.5)

    # ---- report

    def summarize(self) -> list[dict]:
        s = self.samples
        med = statistics.median
        rows: list[dict] = []

        def row(target, metric, key, value, fmt, unit=""):
            anchor = ANCHORS.get((target, key), "")
            verdict = ""
            if target == "basalt" and key in TARGETS_BASALT and value is not None:
                op, limit, text = TARGETS_BASALT[key]
                anchor = f"target {text}" + (f" (nginx {ANCHORS.get(('nginx', key))})"
                                             if ('nginx', key) in ANCHORS else "")
                verdict = "pass" if (value <= limit if op == "<=" else value >= limit) else "FAIL"
            shown = "n/a" if value is None else (fmt.format(value) + unit)
            rows.append(dict(target=target, metric=metric, key=key, value=value, shown=shown,
                             anchor=anchor, verdict=verdict))

        direct_seq = med([r["p50_ms"] for r in s["direct"]["seq"]])
        direct_f1 = [r["mb_per_s"] for r in s["direct"]["fetch1"]]
        direct_f4 = [r["mb_per_s"] for r in s["direct"]["fetch4"]]
        for t in TARGETS:
            m = s[t]
            imap = m["imap50"]
            errors = sum(r["errors"] for k in ("imap50", "seq", "fetch1", "fetch4", "pop3")
                         for r in m.get(k, []))
            if t == "basalt":
                errors += sum(r["errors"] for r in s.get("basalt-tls", {}).get("fetch1", []))
            row(t, f"IMAP logins/s @{self.args.concurrency}", "rate", med([r["rate"] for r in imap]), "{:.0f}")
            row(t, f"IMAP login p50 / p99 @{self.args.concurrency} (ms)", "p50",
                med([r["p50_ms"] for r in imap]), "{:.2f}")
            rows[-1]["shown"] += f" / {med([r['p99_ms'] for r in imap]):.2f}"
            seq = med([r["p50_ms"] for r in m["seq"]])
            row(t, "unloaded login p50 (ms)", "seq", seq, "{:.3f}")
            if t != "direct":
                # per round: target p50 - direct p50 of the same round, then the median
                added = med([x["p50_ms"] - d["p50_ms"] for x, d in zip(m["seq"], s["direct"]["seq"])])
                row(t, "added unloaded latency vs direct (ms)", "added_latency", added, "{:+.3f}")
            if t in PROXIES:
                ok = sum(r["ok"] for r in imap)
                cpu = sum(r["cpu"]["proxy"] for r in imap)
                row(t, "CPU per login (ms) = s per 1,000", "cpu_login", 1000 * cpu / max(1, ok), "{:.3f}")
                if t == "nginx":
                    hcpu = sum(r["cpu"]["helper"] for r in imap)
                    row("nginx", "  auth_http helper CPU per login (ms)", "cpu_helper",
                        1000 * hcpu / max(1, ok), "{:.3f}")
            f1 = [r["mb_per_s"] for r in m["fetch1"]]
            f4 = [r["mb_per_s"] for r in m["fetch4"]]
            row(t, "10 MB FETCH, 1 stream (MB/s)", "mbps1", med(f1), "{:.0f}")
            row(t, "10 MB FETCH, 4 streams (MB/s)", "mbps4", med(f4), "{:.0f}")
            if t != "direct":
                row(t, "relay ratio vs direct, 1 stream", "relay1",
                    med([x / d for x, d in zip(f1, direct_f1)]), "{:.2f}")
                row(t, "relay ratio vs direct, 4 streams", "relay4",
                    med([x / d for x, d in zip(f4, direct_f4)]), "{:.2f}")
            if t in PROXIES:
                mb = sum(r["bytes"] for r in m["fetch1"]) / 1e6
                cpu = sum(r["cpu"]["proxy"] for r in m["fetch1"])
                row(t, "CPU per MB relayed, 1 stream (ms)", "cpu_mb", 1000 * cpu / max(1e-9, mb), "{:.3f}")
            if t == "basalt" and s.get("basalt-tls", {}).get("fetch1"):
                tls = s["basalt-tls"]["fetch1"]
                ft = [r["mb_per_s"] for r in tls]
                row(t, "10 MB FETCH over IMAPS, 1 stream (MB/s)", "mbps1_tls", med(ft), "{:.0f}")
                row(t, "relay ratio vs direct, IMAPS, 1 stream", "relay1_tls",
                    med([x / d for x, d in zip(ft, direct_f1)]), "{:.2f}")
                mb = sum(r["bytes"] for r in tls) / 1e6
                cpu = sum(r["cpu"]["proxy"] for r in tls)
                row(t, "CPU per MB relayed, IMAPS (ms)", "cpu_mb_tls", 1000 * cpu / max(1e-9, mb), "{:.3f}")
            if "pop3" in m:
                row(t, f"POP3 logins/s @{self.args.concurrency}", "pop3",
                    med([r["rate"] for r in m["pop3"]]), "{:.0f}")
                if t in PROXIES:
                    ok = sum(r["ok"] for r in m["pop3"])
                    cpu = sum(r["cpu"]["proxy"] for r in m["pop3"])
                    row(t, "POP3 CPU per login (ms)", "cpu_pop3", 1000 * cpu / max(1, ok), "{:.3f}")
            for variant in ([t, "basalt-tls"] if t == "basalt" else [t]):
                if variant in s and "idle" in s[variant]:
                    idle = s[variant]["idle"]
                    label = "(imaps) " if variant == "basalt-tls" else ("(plaintext) " if t == "basalt" else "")
                    row(t, f"memory per idle session {label}(kB), N={idle[0]['ready']}",
                        "idle_kb" if variant != "basalt-tls" else "idle_kb_tls",
                        med([r["per_session_kb"] for r in idle]), "{:.2f}")
                    errors += sum(r["errors"] for r in idle)
            row(t, "errors (all tests)", "errors", errors, "{:d}")
        return rows

    def per_round(self) -> str:
        """Each round's value of the main metrics, to show the spread."""
        s = self.samples
        metrics = [("imap50", "rate", "IMAP logins/s"), ("seq", "p50_ms", "unloaded p50 ms"),
                   ("fetch1", "mb_per_s", "FETCH x1 MB/s"), ("fetch4", "mb_per_s", "FETCH x4 MB/s"),
                   ("pop3", "rate", "POP3 logins/s")]
        lines = ["| target | metric | " + " | ".join(f"round {i + 1}" for i in range(self.args.rounds)) + " |",
                 "|---|---|" + "---|" * self.args.rounds]
        for t in TARGETS:
            for key, field, label in metrics:
                vals = [r.get(field, 0) for r in s.get(t, {}).get(key, [])]
                if vals:
                    fmt = "{:.3f}" if field == "p50_ms" else "{:.0f}"
                    lines.append(f"| {t} | {label} | " + " | ".join(fmt.format(v) for v in vals) + " |")
        return "\n".join(lines)

    def table(self, rows: list[dict]) -> str:
        head = ("target", "metric", "value", "anchor / target", "pass/fail")
        data = [(r["target"], r["metric"], r["shown"], r["anchor"], r["verdict"]) for r in rows]
        widths = [max(len(str(x[i])) for x in [head, *data]) for i in range(5)]
        lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(head, widths)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(d, widths)) + " |" for d in data]
        return "\n".join(lines)


def versions(build: str) -> dict[str, str]:
    def out(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=REPO)
            return (p.stdout + p.stderr).strip()
        except OSError as e:
            return f"({e})"
    return {
        "basalt": build,
        "dovecot": out([bc.DOVECOT, "--version"]),
        "nginx": out(["nginx", "-v"]),
        "slapd": out([bc.SLAPD, "-VV"]).splitlines()[0] if out([bc.SLAPD, "-VV"]) else "",
        "openssl": out(["openssl", "version"]),
        "kernel": platform.release(),
    }


def machine() -> dict[str, str]:
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines()
                if l.startswith("MemTotal:")), "0")
    model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), "?")
    return {"nproc": str(os.cpu_count()), "memory": f"{int(mem) / 1024 / 1024:.1f} GiB", "cpu": model}


def write_doc(path: Path, bench: Bench, rows: list[dict], table: str, command: str,
              vers: dict, mach: dict, elapsed: float) -> None:
    a = bench.args
    loads = bench.loads
    fails = [r for r in rows if r["verdict"] == "FAIL"]
    findings = HERE / "findings.md"
    text = f"""# Benchmarks: basalt-proxy against nginx and a Dovecot proxy

Produced by `bench/proxy/run.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}. Every number below is from
one run of that script; rerun it to reproduce (the machine, the versions and the load are listed at
the end).

```sh
{command}
```

## Results

{table}

{"Basalt misses " + str(len(fails)) + " target(s): " + ", ".join(r["metric"] for r in fails) + "." if fails else "Basalt meets every target in this run."}
Values are medians over {a.rounds} round{"s" if a.rounds != 1 else ""}, except CPU (total CPU of all rounds / total logins or
MB). "anchor" is the issue's measurement of nginx and Dovecot on the same machine kind; for
basalt the column gives its target. Ratios and added latency are computed per round against the
direct run of the same round, then the median is taken.

Per round (targets alternate within each round):

{bench.per_round()}

## What was measured

- **Setup**: slapd (mdb, {a.users:,} users `user00000`… and `bigmail`, `mailHost` = the IP of the
  user's shard), two Dovecot 2.3 shards on `{SHARD_IPS['a']}` and `{SHARD_IPS['b']}` (users
  alternate between them; every user has one message in `INBOX`, `bigmail` has one 10 MB
  message), master user `proxy` on the shards. Shards run imap with `client_limit = 1`,
  `service_count = 100` during the login and relay tests and with `client_limit = 100` for the
  idle-session test (reloaded in between), because 10,000 one-process-per-session backends do not
  fit in 24 GiB. Every user logged in once before measuring (index files created).
- **(a) direct**: the load generator connects to the user's own shard.
- **(b) basalt**: `basalt-proxy` ({a.basalt_workers} workers, log level `{a.basalt_log_level}`,
  `directory.cache_ttl_s = {a.basalt_cache_ttl}`, so every login does an LDAP search and bind),
  `AUTHENTICATE PLAIN` with authzid to the shard as the master user, ID with the client address.
- **(c) dovecot**: a Dovecot {vers['dovecot'].split()[0]} instance as a proxy: `passdb ldap` with
  `auth_bind = yes` (DN lookup with `pass_filter`, then a bind with the user's password),
  `pass_attrs = uid=user, mailHost=host, =proxy=y, =port=…, =master=proxy, =pass=…` (master-user
  login to the shard), `imap-login`/`pop3-login` in high-performance mode (`service_count = 0`,
  `process_min_avail = 2`). Its CPU and memory are those of all its processes (master, auth,
  login processes, anvil, log, config, stats).
- **(d) nginx**: {vers['nginx'].replace('nginx version: ', '')} (`nginx-light` + `libnginx-mod-mail`), 2 worker processes, default
  proxy buffers, `auth_http` to `bench/proxy/authhttp.cc`: {a.auth_threads} threads, each with a
  persistent LDAP connection for searches (service account) and one for binds; per request an
  LDAP search for the entry (DN, mailHost, status), then a bind as that DN with the password;
  the reply routes to the shard's IP and makes nginx log in as `user*proxy` with the master
  password. The helper's CPU is reported on its own row.
- **Logins**: {a.concurrency} concurrent clients for {a.duration} s per target and round, each
  loop: connect, greeting, `LOGIN`, `SELECT INBOX`, `LOGOUT`, wait for the server to close;
  latency from connect to the tagged `LOGOUT` OK. Users are taken in order from a moving offset
  over all {a.users:,} users; clients use the source addresses
  127.0.3.1–127.0.3.{len(CLIENT_SOURCES)}. CPU per login = the proxy's CPU time over the run
  (all its threads and processes, from `/proc/<pid>/task/*/schedstat` and reaped children) ÷
  successful logins.
- **Unloaded latency**: {a.seq} sequential logins (one client); added latency = p50(target) −
  p50(direct).
- **Relay**: `FETCH 1 BODY.PEEK[]` of the 10 MB message, {a.fetches} times on one connection,
  and {max(1, a.fetches // 2)} times on each of 4 parallel connections; throughput = literal
  bytes ÷ wall time from the first FETCH to the last tagged OK. CPU per MB = the proxy's CPU
  during the one-stream runs ÷ MB relayed.
- **Idle sessions**: N = {a.connections:,} connections opened and logged in (`LOGIN` only, 100
  at a time), then held; memory per session = (sum of VmRSS of all the proxy's processes with N
  sessions open − before) ÷ N, measured 2 s after the last login. basalt is measured on plaintext
  IMAP and on IMAPS (TLS 1.3, OpenSSL defaults). The nginx helper holds no per-session state.
{("- " + a.fd_note + ".") if a.fd_note else ""}
- **POP3**: {a.concurrency} concurrent clients, `USER`, `PASS`, `STAT`, `QUIT`, for
  {a.duration / 2} s per target and round.

{findings.read_text() if findings.exists() else ""}

## Environment

| | |
|---|---|
| basalt | {vers['basalt']} |
| Dovecot | {vers['dovecot']} |
| nginx | {vers['nginx']} |
| slapd | {vers['slapd']} |
| OpenSSL | {vers['openssl']} |
| kernel | {vers['kernel']} |
| machine | {mach['nproc']} CPUs ({mach['cpu']}), {mach['memory']} memory |
| 1-minute load | {loads[0]:.2f} before the rounds; during the run min {min(loads):.2f}, max {max(loads):.2f} (includes the benchmark's own processes) |
| CPU used by other jobs | {" / ".join(f"{x:.2f}" for x in bench.others)} of {mach['nproc']} CPUs, per round (machine busy time − this benchmark's processes) |
| duration | {elapsed / 60:.1f} min |
"""
    if loads[0] >= 1.0 or (bench.others and max(bench.others) >= 0.25):
        text += ("\nThe machine is shared with other engineers' builds and tests: "
                 + (f"the 1-minute load was {loads[0]:.2f} when the rounds started, and " if loads[0] >= 1.0 else "")
                 + f"other jobs used up to {max(bench.others or [0]):.2f} of the {mach['nproc']} CPUs during a round. "
                 "Absolute rates and CPU times are therefore higher/noisier than on an idle machine; "
                 "the alternating rounds spread that over all targets alike.\n")
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small numbers (1,000 users, 200 idle sessions, 1 round), < 2 minutes")
    parser.add_argument("--connections", type=int, help="idle sessions per proxy (default 10000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 5)")
    parser.add_argument("--users", type=int, help="users in LDAP (default 10000)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, help="seconds per login run (default 5)")
    parser.add_argument("--seq", type=int, help="sequential logins per run (default 300)")
    parser.add_argument("--fetches", type=int, help="10 MB fetches per single-stream run (default 10)")
    parser.add_argument("--idle-rounds", type=int, default=1)
    parser.add_argument("--no-pop3", action="store_true")
    parser.add_argument("--basalt-workers", type=int, default=2)
    parser.add_argument("--basalt-cache-ttl", type=int, default=0,
                        help="directory.cache_ttl_s for basalt (default 0: LDAP search on every login)")
    parser.add_argument("--basalt-log-level", default="info")
    parser.add_argument("--auth-threads", type=int, default=4, help="threads of nginx's auth_http helper")
    parser.add_argument("--build-dir", default=str(REPO / "build-bench"))
    parser.add_argument("--proxy-binary")
    parser.add_argument("--doc", help="write the report here (default docs/benchmarks.md; "
                                      "with --quick: the work dir, unless given)")
    parser.add_argument("--wait-load", type=float, default=0,
                        help="before measuring, wait (up to --wait-max s) for the 1-minute load to drop below this")
    parser.add_argument("--wait-max", type=float, default=1200)
    parser.add_argument("--no-install", action="store_true", help="never apt-get install nginx")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args()
    q = args.quick
    defaults = dict(connections=(200, 10000), rounds=(1, 5), users=(1000, 10000), duration=(1.0, 5.0),
                    seq=(40, 300), fetches=(2, 10))
    for k, (quick, full) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, quick if q else full)
    command = "bench/proxy/run.py" + "".join(" " + shlex.quote(x) for x in sys.argv[1:])

    # basalt-proxy holds 2 descriptors per proxied session in one process (client + shard), so
    # N sessions need RLIMIT_NOFILE > 2 N. Raise it if we may (CAP_SYS_RESOURCE), else cap N.
    need = args.connections * 2 + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    args.fd_note = ""
    if hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            hard = need
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.nofile = hard
    if hard < need:
        capped = (hard - 400) // 2
        args.fd_note = (f"N = {capped:,} instead of {args.connections:,}: the RLIMIT_NOFILE hard limit here "
                        f"is {hard:,} and cannot be raised (no CAP_SYS_RESOURCE), and basalt-proxy, one "
                        f"process, needs two descriptors per session")
        print(f"warning: {args.fd_note}", file=sys.stderr)
        args.connections = capped

    bc.interrupt_on_termination()
    bench = Bench(args)
    t0 = time.time()
    try:
        bench.setup()
        bench.warm_up()
        if args.wait_load > 0:
            deadline = time.monotonic() + args.wait_max
            while loadavg() >= args.wait_load and time.monotonic() < deadline:
                log(f"waiting for the load to drop below {args.wait_load} (now {loadavg():.2f})")
                time.sleep(15)
        bench.loads = [loadavg()]
        for i in range(args.rounds):
            bench.round(i)
        bench.idle()
        bench.loads.append(loadavg())
        bench.finished = True
        rows = bench.summarize()
        table = bench.table(rows)
        print()
        print(table)
        print()
        vers = versions(bench.proxy_build)
        mach = machine()
        doc = Path(args.doc) if args.doc else (bench.workdir / "benchmarks.md" if q else REPO / "docs" / "benchmarks.md")
        if q and not args.doc:
            args.keep_workdir = True
        (bench.workdir / "results.json").write_text(json.dumps(bench.samples, indent=1))
        write_doc(doc, bench, rows, table, command, vers, mach, time.time() - t0)
        log(f"report written to {doc}; raw samples in {bench.workdir / 'results.json'}"
            + ("" if args.keep_workdir else " (work dir removed)"))
        return 0
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
