#!/usr/bin/python3
"""A real local mail cluster on 127.0.0.1 for Basalt's integration tests and demo.

Pieces (each a child process with its own config under a work directory, ports picked
at run time, stopped by stop()):

  make_certs(dir)            a CA and a localhost server certificate (openssl CLI)
  Slapd(workdir, users)      OpenLDAP with the Basalt schema, users loaded by slapadd
  Dovecot(workdir, name, users)  one backend shard: IMAP, POP3, LMTP, a master user
  Proxy(workdir, binary, config) basalt-proxy with the TOML text it is given
  proxy_config(...)          renders that TOML for a Slapd and some Dovecot shards
  Cluster(workdir, ...)      the demo: slapd, shards a and b with mail, the proxy

CLI: basalt_cluster.py up --workdir DIR [--proxy-binary PATH] ... ; basalt_cluster.py down --workdir DIR

Standard library only; needs slapd, ldap-utils, dovecot and openssl (scripts/install-deps.sh).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import ctypes
import email.utils
import grp
import hashlib
import imaplib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO_ROOT / "conf" / "ldap" / "basalt.schema"
SYSTEM_SCHEMA_DIR = Path("/etc/ldap/schema")
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
DOVECOT = "/usr/sbin/dovecot"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


class ClusterError(RuntimeError):
    """A daemon failed to start or a helper command failed."""


class LdapTimeout(ClusterError):
    """An LDAP client command got no answer in time (e.g. the server is paused)."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path | str, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def run(cmd: list[str], *, input: bytes | None = None, timeout: float = 30.0,
        check: bool = True) -> subprocess.CompletedProcess:
    """Runs a helper command; on failure raises ClusterError with its output."""
    try:
        res = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LdapTimeout(f"{cmd[0]} timed out after {timeout}s") from e
    if check and res.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed ({res.returncode}):\n"
                           f"{res.stdout.decode(errors='replace')}{res.stderr.decode(errors='replace')}")
    return res


def ssha(password: str) -> str:
    """An RFC 2307 {SSHA} hash, as slappasswd makes; Dovecot understands it too."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def ldif_line(attr: str, value: str) -> str:
    """attr: value, or attr:: base64 when the value is not a SAFE-STRING (RFC 2849)."""
    safe = (value == "" or (value[0] not in " :<" and value[-1] != " "
                            and all(32 <= ord(c) < 127 for c in value)))
    if safe:
        return f"{attr}: {value}"
    return f"{attr}:: {base64.b64encode(value.encode()).decode()}"


def ldap_escape(value: str) -> str:
    """Escapes a value for an LDAP search filter (RFC 4515)."""
    return "".join(f"\\{ord(c):02x}" if c in '*()\\\0' else c for c in value)


def parse_ldif(text: str) -> list[dict[str, list[str]]]:
    """Entries of ldapsearch -LLL output as {attr: [values]}, with 'dn' as an attribute."""
    entries: list[dict[str, list[str]]] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\n ", "")):
        entry: dict[str, list[str]] = {}
        for line in block.splitlines():
            if not line or line.startswith("#") or ":" not in line:
                continue
            attr, rest = line.split(":", 1)
            if rest.startswith(":"):
                value = base64.b64decode(rest[1:].strip()).decode(errors="replace")
            else:
                value = rest.strip()
            entry.setdefault(attr, []).append(value)
        if entry:
            entries.append(entry)
    return entries


def mail_account() -> tuple[int, int, str]:
    """uid, gid, name that own the Dovecot mail store.

    Dovecot refuses uid 0 for mail, so as root we pick an existing unprivileged account
    ($BASALT_MAIL_USER, else vmail, mail, nobody). Otherwise it is the current user."""
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
        return pw.pw_uid, os.getegid(), pw.pw_name
    names = [os.environ.get("BASALT_MAIL_USER", ""), "vmail", "mail", "nobody"]
    for name in filter(None, names):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid, pw.pw_name
    raise ClusterError("running as root and found no unprivileged account for mail "
                       "(set BASALT_MAIL_USER)")


def existing_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ClusterError(f"none of these users exist: {', '.join(names)}")


def check_traversable(path: Path, uid: int, gid: int) -> None:
    """Raises if uid:gid cannot reach path (e.g. a 0700 parent owned by root)."""
    for parent in [*reversed(path.parents)]:
        st = parent.stat()
        if st.st_uid == uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            raise ClusterError(
                f"{parent} (mode {oct(st.st_mode & 0o777)}) is not searchable by uid {uid}, "
                f"which owns the Dovecot mail store when running as root; use a work "
                f"directory under a world-searchable path (e.g. /tmp/basalt-xyz, chmod 711)")


_RUNNING: set["Daemon"] = set()
# What AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer and ThreadSanitizer print
# when they find something (a sanitizer build may report and carry on, see Daemon.stop()).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int):
    """preexec_fn: the daemon gets SIGTERM if this Python process dies (Linux), so even a
    SIGKILLed test run leaves nothing behind. The signal follows the *thread* that
    forked, so it is only armed when starting from the main thread."""
    def setup() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl
            os._exit(1)
    return setup


@atexit.register
def _stop_all_at_exit() -> None:
    for daemon in list(_RUNNING):
        daemon.stop(check=False)


def sanitizer_report(text: str) -> str | None:
    """The first sanitizer report in a daemon's output (with some context), or None."""
    hits = [i for i in (text.find(m) for m in SANITIZER_MARKERS) if i >= 0]
    if not hits:
        return None
    start = text.rfind("\n", 0, min(hits)) + 1
    return text[start:start + 4000]


class Daemon:
    """One foreground child process in its own process group, with a log file."""

    name = "daemon"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None   # the daemon's own log
        self.out_path: Path | None = None   # its stdout and stderr
        self._out_offset = 0                # where this run's output starts in out_path
        self._paused = False

    def _spawn(self, cmd: list[str], out_path: Path, cwd: Path) -> None:
        self.out_path = out_path
        if self.log_path is None:
            self.log_path = out_path
        main = threading.current_thread() is threading.main_thread()
        self._out_offset = out_path.stat().st_size if out_path.exists() else 0
        with open(out_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=cwd,
                                         start_new_session=True,
                                         preexec_fn=_child_setup(os.getpid()) if main else None)
        _RUNNING.add(self)

    def _wait_ports(self, ports: list[int], timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            if self.proc is None or self.proc.poll() is not None:
                self._fail(f"exited with status {self.proc and self.proc.returncode}")
            if port_accepts(pending[0], timeout=0.2):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                self._fail(f"port {pending[0]} not accepting after {timeout}s")
            time.sleep(0.05)

    def _fail(self, why: str) -> None:
        self.stop(check=False)
        logs = [p for p in dict.fromkeys([self.out_path, self.log_path]) if p and p.exists()]
        tails = "".join(f"\n--- {p} ---\n{log_tail(p)}" for p in logs)
        raise ClusterError(f"{type(self).__name__} {self.name} failed to start: {why}{tails}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            self.proc.send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP the whole process group: the ports still accept, nothing answers."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self.running():
            os.killpg(self.proc.pid, signal.SIGCONT)
        self._paused = False

    def stop(self, timeout: float = STOP_TIMEOUT_S, check: bool = True) -> None:
        """SIGTERM, then SIGKILL for the whole process group after timeout. Idempotent.
        With `check`, raises ClusterError when the run's output holds a sanitizer report (an
        ASan/UBSan/TSan build of our daemons may report and keep running, or report leaks
        at exit: either must fail the test that ran it)."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        if proc.poll() is None:
            if self._paused:
                self.resume()
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(pgid, proc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        self._paused = False
        _RUNNING.discard(self)
        if check:
            self.check_sanitizers()

    def sanitizer_output(self) -> str:
        """What this run (since the last start) wrote to its stdout and stderr."""
        if self.out_path is None:
            return ""
        try:
            with open(self.out_path, "rb") as f:
                f.seek(self._out_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def check_sanitizers(self) -> None:
        report = sanitizer_report(self.sanitizer_output())
        if report is not None:
            self._out_offset = self.out_path.stat().st_size  # reported once
            raise ClusterError(f"{type(self).__name__} {self.name}: sanitizer report in "
                               f"{self.out_path}:\n{report}")

    def kill(self) -> None:
        """SIGKILLs the whole process group at once (a crash, or a fast stop)."""
        if self.proc is not None:
            _kill_group(self.proc.pid, self.proc)
        self.stop()

    def restart(self) -> None:
        """Stops and starts again, on the same ports and with the same data."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except FileNotFoundError:
            return ""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


def stop_all(daemons) -> None:
    """Stops several daemons at once: SIGTERM to all first, then wait for each."""
    daemons = [d for d in daemons if d is not None]
    for d in daemons:
        if d.running():
            if d._paused:
                d.resume()
            d.signal(signal.SIGTERM)
    errors = []
    for d in daemons:
        try:
            d.stop()
        except ClusterError as e:  # stop every daemon first, then report
            errors.append(str(e))
    if errors:
        raise ClusterError("\n".join(errors))


def _kill_group(pgid: int, proc: subprocess.Popen | None = None) -> None:
    """SIGKILLs what is left of a process group and waits (bounded) until it is gone.

    proc, our child and the group leader, is reaped here: as a zombie it would keep the
    group alive. Grandchildren are reaped by init once orphaned."""
    try:
        os.killpg(pgid, signal.SIGKILL)
        os.killpg(pgid, signal.SIGCONT)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()
        if not _group_alive(pgid):
            return
        time.sleep(0.01)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group is alive; zombies waiting for init do not count."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


# --------------------------------------------------------------------------- certificates


def make_certs(directory: Path | str) -> dict[str, str]:
    """A CA and a server certificate for localhost, 127.0.0.1 and ::1 (EC P-256, 10 years).

    Returns dict(ca=, cert=, key=) of file paths. Existing files are reused."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = dict(ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem")
    if all(p.exists() for p in paths.values()):
        return {k: str(v) for k, v in paths.items()}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(paths["ca"]),
         "-days", "3650", "-subj", "/O=Basalt test/CN=Basalt Test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", *ec, "-keyout", str(paths["key"]), "-out", str(d / "server.csr"),
         "-subj", "/O=Basalt test/CN=localhost"])
    ext = d / "server.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    run(["openssl", "x509", "-req", "-in", str(d / "server.csr"), "-CA", str(paths["ca"]),
         "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(paths["cert"]),
         "-days", "3650", "-sha256", "-extfile", str(ext)])
    for key in (d / "ca.key", paths["key"]):
        key.chmod(0o600)
    return {k: str(v) for k, v in paths.items()}


# --------------------------------------------------------------------------- slapd


class Slapd(Daemon):
    """OpenLDAP slapd with an mdb database, the Basalt schema and the given users.

    users: [{uid, password, mail_host, status (optional)}, ...] (other keys are ignored).
    Entries: uid=<uid>,ou=people,<base_dn> (inetOrgPerson + basaltMailUser); a service
    account cn=proxy,ou=services,<base_dn> that may read people but not userPassword."""

    name = "slapd"

    def __init__(self, workdir: Path | str, users: list[dict], base_dn: str = "dc=example,dc=org",
                 port: int | None = None, debug: str = "stats") -> None:
        super().__init__()
        self.workdir = Path(workdir).resolve()
        self.users = list(users)
        self.base_dn = base_dn
        self.people_dn = f"ou=people,{base_dn}"
        self.port = port or free_port()
        self.uri = f"ldap://{LOOPBACK}:{self.port}"
        self.debug = debug
        self.admin_dn = f"cn=admin,{base_dn}"
        self.admin_password = "admin-" + secrets.token_hex(6)
        self.service_dn = f"cn=proxy,ou=services,{base_dn}"
        self.service_password = "proxy-" + secrets.token_hex(6)
        self.conf_path = self.workdir / "slapd.conf"
        self.db_dir = self.workdir / "db"

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{self.people_dn}"

    # config and data

    def config_text(self) -> str:
        schemas = [SYSTEM_SCHEMA_DIR / f"{n}.schema" for n in
                   ("core", "cosine", "inetorgperson", "misc")] + [SCHEMA_FILE]
        includes = "\n".join(f"include {p}" for p in schemas)
        module = ""
        if Path("/usr/lib/ldap/back_mdb.so").exists():
            module = "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
        w = self.workdir
        return f"""# generated by basalt_cluster.py
{includes}
pidfile {w}/slapd.pid
argsfile {w}/slapd.args
{module}
database mdb
maxsize 1073741824
suffix "{self.base_dn}"
rootdn "{self.admin_dn}"
rootpw {ssha(self.admin_password)}
directory {self.db_dir}
index objectClass eq
index uid,mail eq
index mailHost eq

access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
access to attrs=userPassword
    by self write
    by * auth
access to dn.subtree="{self.people_dn}"
    by dn.exact="{self.service_dn}" read
    by self read
    by * none
access to *
    by self read
    by * none
"""

    def _entry_ldif(self, user: dict) -> str:
        uid = user["uid"]
        lines = [ldif_line("dn", self.user_dn(uid)), "objectClass: inetOrgPerson",
                 "objectClass: basaltMailUser", ldif_line("uid", uid), ldif_line("cn", uid),
                 ldif_line("sn", uid), ldif_line("mail", user.get("mail", f"{uid}@example.org")),
                 ldif_line("userPassword", ssha(user["password"]))]
        if user.get("mail_host"):
            lines.append(ldif_line("mailHost", user["mail_host"]))
        if user.get("status"):
            lines.append(ldif_line("mailUserStatus", user["status"]))
        return "\n".join(lines) + "\n"

    def data_ldif(self) -> str:
        rdn_attr, rdn_value = self.base_dn.split(",")[0].split("=", 1)
        if rdn_attr.lower() == "dc":
            top = f"objectClass: dcObject\nobjectClass: organization\ndc: {rdn_value}\no: {rdn_value}\n"
        elif rdn_attr.lower() == "o":
            top = f"objectClass: organization\no: {rdn_value}\n"
        else:
            raise ClusterError(f"base_dn must start with dc= or o=: {self.base_dn}")
        parts = [f"dn: {self.base_dn}\n{top}",
                 f"dn: {self.people_dn}\nobjectClass: organizationalUnit\nou: people\n",
                 f"dn: ou=services,{self.base_dn}\nobjectClass: organizationalUnit\nou: services\n",
                 f"dn: {self.service_dn}\nobjectClass: organizationalRole\n"
                 f"objectClass: simpleSecurityObject\ncn: proxy\n"
                 f"userPassword: {ssha(self.service_password)}\n"]
        parts += [self._entry_ldif(u) for u in self.users]
        return "\n".join(parts)

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text())
        if (self.db_dir / "data.mdb").exists():
            return
        self.db_dir.mkdir(parents=True, exist_ok=True)
        ldif = self.workdir / "data.ldif"
        ldif.write_text(self.data_ldif())
        run([SLAPADD, "-q", "-f", str(self.conf_path), "-l", str(ldif)], timeout=120)

    # lifecycle

    def start(self) -> None:
        if self.running():
            return
        self._prepare()
        self._spawn([SLAPD, "-h", self.uri + "/", "-f", str(self.conf_path), "-d", self.debug],
                    self.workdir / "slapd.log", self.workdir)
        self._wait_ports([self.port])
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.search("(objectClass=*)", ["namingContexts"], base="", scope="base",
                            timeout=2, bind=False)
                return
            except ClusterError as e:
                if not self.running() or time.monotonic() > deadline:
                    self._fail(f"anonymous root DSE search failed: {e}")
                time.sleep(0.1)

    # client helpers (ldap-utils)

    def _auth_args(self, bind_dn: str | None, password: str | None, bind: bool) -> list[str]:
        if not bind:
            return []
        dn = bind_dn or self.admin_dn
        pw = password if bind_dn else self.admin_password
        return ["-D", dn, "-w", pw or ""]

    def search(self, filter: str = "(objectClass=*)", attrs: list[str] | tuple = (), *,
               base: str | None = None, scope: str = "sub", bind_dn: str | None = None,
               password: str | None = None, bind: bool = True,
               timeout: float = 5.0) -> list[dict[str, list[str]]]:
        """ldapsearch; binds as admin unless bind_dn/password are given (or bind=False for
        anonymous). Raises LdapTimeout when the server does not answer in time."""
        cmd = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-o", f"nettimeout={int(timeout) or 1}",
               "-H", self.uri, "-b", self.base_dn if base is None else base, "-s", scope,
               *self._auth_args(bind_dn, password, bind), filter, *attrs]
        res = run(cmd, timeout=timeout, check=False)
        if res.returncode not in (0, 32):  # 32: no such object
            raise ClusterError(f"ldapsearch failed ({res.returncode}): "
                               f"{res.stderr.decode(errors='replace').strip()}")
        return parse_ldif(res.stdout.decode(errors="replace"))

    def find_user(self, uid: str, **kwargs) -> dict[str, list[str]] | None:
        """The user's entry as {attr: [values]} (with "dn"), or None if not visible."""
        found = self.search(f"(uid={ldap_escape(uid)})", **kwargs, base=self.people_dn)
        return found[0] if found else None

    def can_bind(self, dn: str, password: str, timeout: float = 5.0) -> bool:
        """True if a simple bind as dn with password succeeds (ldapwhoami)."""
        res = run(["ldapwhoami", "-x", "-o", f"nettimeout={int(timeout) or 1}", "-H", self.uri,
                   "-D", dn, "-w", password], timeout=timeout, check=False)
        if res.returncode == 0:
            return True
        if res.returncode == 49:  # invalidCredentials
            return False
        raise ClusterError(f"ldapwhoami failed ({res.returncode}): "
                           f"{res.stderr.decode(errors='replace').strip()}")

    def _ldapmodify(self, ldif: str, timeout: float = 10.0) -> None:
        run(["ldapmodify", "-x", "-H", self.uri, "-D", self.admin_dn, "-w", self.admin_password],
            input=ldif.encode(), timeout=timeout)

    ATTR_ALIASES = {"status": "mailUserStatus", "mail_host": "mailHost", "password": "userPassword"}

    def modify(self, uid: str, **attrs) -> None:
        """Replaces attributes of a user as admin; None deletes one. Aliases: status,
        mail_host, password (hashed). E.g. modify("alice", status="moving")."""
        lines = [ldif_line("dn", self.user_dn(uid)), "changetype: modify"]
        for key, value in attrs.items():
            attr = self.ATTR_ALIASES.get(key, key)
            if value is None:
                lines += [f"delete: {attr}", "-"]
                continue
            if attr == "userPassword" and not str(value).startswith("{"):
                value = ssha(str(value))
            lines += [f"replace: {attr}", ldif_line(attr, str(value)), "-"]
        self._ldapmodify("\n".join(lines) + "\n")

    def add_user(self, user: dict) -> None:
        self._ldapmodify(self._entry_ldif(user).replace("\n", "\nchangetype: add\n", 1))
        self.users.append(user)

    def delete_user(self, uid: str) -> None:
        self._ldapmodify(f"{ldif_line('dn', self.user_dn(uid))}\nchangetype: delete\n")
        self.users = [u for u in self.users if u["uid"] != uid]


# --------------------------------------------------------------------------- Dovecot


class ShardClients:
    """Client helpers for a shard (Dovecot or basalt-store): needs imap_port, lmtp_port,
    master_user, master_password and users ({name: password})."""

    def imap(self, user: str, password: str | None = None) -> imaplib.IMAP4:
        """An imaplib connection logged in as user (own password by default)."""
        conn = imaplib.IMAP4(LOOPBACK, self.imap_port, timeout=10)
        conn.login(user, password if password is not None else self.users[user])
        return conn

    def imap_as_master(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(LOOPBACK, self.imap_port, timeout=10)
        secret = f"{user}\0{self.master_user}\0{self.master_password}".encode()
        conn.authenticate("PLAIN", lambda _: secret)
        return conn

    def deliver(self, user: str, message: bytes | str, mailbox: str = "INBOX",
                sender: str = "sender@example.org") -> None:
        """LMTP delivery (to mailbox via user+mailbox detail when not INBOX)."""
        if isinstance(message, str):
            message = message.encode()
        if mailbox != "INBOX":
            conn = self.imap_as_master(user)
            try:
                typ, data = conn.append(_quote_mailbox(mailbox), None, None, message)
                if typ != "OK":
                    raise ClusterError(f"APPEND to {mailbox} for {user}: {data}")
            finally:
                conn.logout()
            return
        with smtplib.LMTP(LOOPBACK, self.lmtp_port, timeout=10) as lmtp:
            refused = lmtp.sendmail(sender, [user], message)
            if refused:
                raise ClusterError(f"LMTP refused {user}: {refused}")

    def create_mailbox(self, user: str, name: str) -> None:
        conn = self.imap_as_master(user)
        try:
            typ, data = conn.create(_quote_mailbox(name))
            if typ != "OK" and b"exists" not in b" ".join(d or b"" for d in data).lower():
                raise ClusterError(f"CREATE {name} for {user}: {data}")
            conn.subscribe(_quote_mailbox(name))
        finally:
            conn.logout()


class Dovecot(ShardClients, Daemon):
    """One Dovecot backend shard on 127.0.0.1: IMAP (and IMAPS with certs), POP3, LMTP.

    users: {user: password}. The master user logs in as any user with SASL PLAIN
    authzid=user, authcid=master_user. Mail: Maildir under workdir/mail/<user>.

    Unlike a production Dovecot, failed logins are answered at once (auth_failure_delay
    "0"; Dovecot's default is "2 secs") and there is no per-IP auth penalty, which
    Dovecot 2.3 applies even to login_trusted_networks: every test client and the proxy
    come from 127.0.0.1, so one failed login would slow the next ones by 2-15 s."""

    def __init__(self, workdir: Path | str, name: str, users: dict[str, str],
                 master_user: str = "proxy", master_password: str | None = None,
                 trusted_networks: str = "127.0.0.0/8", cert: str | None = None,
                 key: str | None = None, auth_failure_delay: str = "0",
                 auth_penalty: bool = False, extra_config: str = "") -> None:
        super().__init__()
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.users = dict(users)
        self.master_user = master_user
        self.master_password = master_password or "master-" + secrets.token_hex(6)
        self.trusted_networks = trusted_networks
        self.cert, self.key = cert, key
        self.auth_failure_delay = auth_failure_delay
        self.auth_penalty = auth_penalty
        self.extra_config = extra_config
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.lmtp_port = free_port()
        self.imaps_port = free_port() if cert else None
        self.pop3s_port = free_port() if cert else None
        self.conf_path = self.workdir / "dovecot.conf"
        self.mail_dir = self.workdir / "mail"
        self.log_path = self.workdir / "dovecot.log"

    @property
    def ports(self) -> list[int]:
        return [p for p in (self.imap_port, self.pop3_port, self.lmtp_port, self.imaps_port,
                            self.pop3s_port) if p]

    def config_text(self) -> str:
        w = self.workdir
        uid, gid, _ = mail_account()
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        internal_group = grp.getgrgid(os.getegid()).gr_name
        # Root: login processes must not be root (dovenull, chrooted to base_dir/login);
        # internal services stay root so they can read files under a private workdir.
        # Non-root: everything runs as the current user and nothing can chroot.
        login_user = existing_user("dovenull", "nobody") if root else me
        no_chroot = "" if root else "  chroot =\n"
        penalty = "" if self.auth_penalty else (
            "  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n")
        ssl = "ssl = no\n"
        imaps = "    port = 0\n"
        pop3s = "    port = 0\n"
        if self.cert:
            ssl = f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.key}\n"
            imaps = f"    address = {LOOPBACK}\n    port = {self.imaps_port}\n    ssl = yes\n"
            pop3s = f"    address = {LOOPBACK}\n    port = {self.pop3s_port}\n    ssl = yes\n"
        return f"""# generated by basalt_cluster.py for shard {self.name}
protocols = imap pop3 lmtp
listen = {LOOPBACK}
instance_name = basalt-{self.name}
base_dir = {w}/run
state_dir = {w}/state
log_path = {self.log_path}
auth_verbose = yes
auth_mechanisms = plain login
disable_plaintext_auth = no
{ssl}login_trusted_networks = {self.trusted_networks}
imap_id_log = *
mail_fsync = never
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 0
default_internal_user = {me}
default_internal_group = {internal_group}
default_login_user = {login_user}
default_process_limit = 1000
default_client_limit = 10000
postmaster_address = postmaster@example.org
lmtp_user_concurrency_limit = 0

passdb {{
  driver = passwd-file
  args = scheme=SSHA {w}/masters
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=SSHA {w}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_dir}/%u
}}

auth_failure_delay = {self.auth_failure_delay}

service anvil {{
{no_chroot}{penalty}}}
service imap-login {{
{no_chroot}  service_count = 0
  process_min_avail = 1
  client_limit = 1000
  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
{imaps}  }}
}}
service pop3-login {{
{no_chroot}  service_count = 0
  process_min_avail = 1
  client_limit = 1000
  inet_listener pop3 {{
    address = {LOOPBACK}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
{pop3s}  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {LOOPBACK}
    port = {self.lmtp_port}
  }}
}}
service imap {{
  process_limit = 1000
}}
service pop3 {{
  process_limit = 1000
}}
{self.extra_config}
"""

    def _write_passwd_files(self) -> None:
        for name, text in (("users", "".join(f"{u}:{ssha(p)}\n" for u, p in self.users.items())),
                           ("masters", f"{self.master_user}:{ssha(self.master_password)}\n")):
            path = self.workdir / name
            old = path.stat().st_mtime_ns if path.exists() else None
            path.write_text(text)
            # Dovecot re-reads a passwd-file when its mtime (in whole seconds) changes; a rewrite
            # within the same second would go unnoticed, so move the mtime on by a second.
            if old is not None and path.stat().st_mtime_ns // 10**9 <= old // 10**9:
                bumped = (old // 10**9 + 1) * 10**9
                os.utime(path, ns=(bumped, bumped))

    def start(self) -> None:
        if self.running():
            return
        for d in ("run", "state"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        uid, gid, _ = mail_account()
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(self.mail_dir, uid, gid)
            check_traversable(self.mail_dir, uid, gid)
        self._write_passwd_files()
        self.conf_path.write_text(self.config_text())
        (self.workdir / "run" / "master.pid").unlink(missing_ok=True)  # stale after kill()
        self._spawn([DOVECOT, "-c", str(self.conf_path), "-F"], self.workdir / "dovecot.out",
                    self.workdir)
        self._wait_ports(self.ports)
        self._wait_greeting()

    def _wait_greeting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with socket.create_connection((LOOPBACK, self.imap_port), timeout=2) as s:
                    if s.recv(512).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if not self.running() or time.monotonic() > deadline:
                self._fail("no IMAP greeting")
            time.sleep(0.1)

    def log_text(self) -> str:
        """Dovecot's log file (logins, ID, errors)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def add_user(self, user: str, password: str) -> None:
        """Adds or changes a user; the passwd-file is re-read on the next login."""
        self.users[user] = password
        self._write_passwd_files()
        # Dovecot stats a passwd-file at most once per second (last_sync_time == ioloop_time):
        # a lookup in the same second as the previous one would still see the old file.
        time.sleep(1.1)


def _quote_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_message(subject: str, body: str = "Hello.\n", sender: str = "sender@example.org",
                 to: str = "user@example.org") -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
               f"Date: {email.utils.formatdate(localtime=False)}",
               f"Message-ID: {email.utils.make_msgid(domain='example.org')}",
               "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    text = "\r\n".join(headers) + "\r\n\r\n" + body.replace("\r\n", "\n").replace("\n", "\r\n")
    return text.encode()


# --------------------------------------------------------------------------- proxy


class Proxy(Daemon):
    """basalt-proxy with the TOML config it is given (text, or a dict rendered by to_toml)."""

    name = "basalt-proxy"

    def __init__(self, workdir: Path | str, binary: Path | str, config: str | dict,
                 extra_args: list[str] | tuple = ()) -> None:
        super().__init__()
        self.workdir = Path(workdir).resolve()
        self.binary = str(Path(binary).resolve())  # daemons run with their workdir as cwd
        self.config_text = config if isinstance(config, str) else to_toml(config)
        self.extra_args = list(extra_args)
        self.conf_path = self.workdir / "proxy.toml"
        self.log_path = self.workdir / "proxy.log"
        cfg = tomllib.loads(self.config_text)
        self.listeners: list[tuple[str, str, int]] = []
        for listener in cfg.get("listener", []):
            host, port = _split_address(listener["address"])
            self.listeners.append((listener["protocol"], host, port))
        admin = cfg.get("admin", {})
        self.admin_address = _split_address(admin["address"]) if "address" in admin else None
        self.admin_token = admin.get("token")

    def port(self, protocol: str) -> int:
        """Port of the first listener for protocol (imap, imaps, pop3, pop3s)."""
        for proto, _, port in self.listeners:
            if proto == protocol:
                return port
        raise KeyError(protocol)

    def start(self) -> None:
        if self.running():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text)
        self._spawn([self.binary, "-c", str(self.conf_path), *self.extra_args], self.log_path,
                    self.workdir)
        ports = [p for _, _, p in self.listeners]
        if self.admin_address:
            ports.append(self.admin_address[1])
        self._wait_ports(ports)

    def write_config(self, config: str | dict) -> None:
        """Replaces proxy.toml (then call reload())."""
        self.config_text = config if isinstance(config, str) else to_toml(config)
        self.conf_path.write_text(self.config_text)

    def reload(self) -> None:
        self.signal(signal.SIGHUP)


def users_toml(users: list[tuple]) -> str:
    """A users file ([[user]] tables) from (name, stored password e.g. "{PLAIN}x", shard, status)
    tuples, optionally with a fifth item: more keys of the entry, e.g. {"quota_bytes": 5000}."""
    def entry(n: str, pw: str, shard: str, status: str, extra: dict | None = None) -> str:
        more = "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in (extra or {}).items())
        return (f"[[user]]\nname = {_toml_str(n)}\npassword = {_toml_str(pw)}\nshard = {_toml_str(shard)}\n"
                f"status = {_toml_str(status)}\n{more}\n")
    return "".join(entry(*u) for u in users)


class Store(ShardClients, Daemon):
    """basalt-store on 127.0.0.1 with its own spool and index root under `workdir`.

    services: which listeners to configure and wait for ("lmtp", "imap", "pop3"); ports are
    free ones picked now (self.ports[service]). users_toml: the [[user]] table file's text.
    masters: {name: password} master users, accepted from `trusted` (trusted_networks).
    store_keys / service_keys: more keys for [store] / for [imap] or [pop3] ({"imap": "k = 1\n"}).
    tls_certs: make_certs() output; configures [tls] (STARTTLS / STLS).
    quota: the [quota] table, e.g. {"storage_bytes": 10**9, "messages": 0} (users_toml entries
    may override it with quota_bytes / quota_messages).
    extra: TOML appended to the config (more tables).
    """

    name = "basalt-store"

    def __init__(self, workdir: Path | str, binary: Path | str, users_toml: str, *, shard: str = "a",
                 services: tuple[str, ...] = ("lmtp",), masters: dict[str, str] | None = None,
                 store_keys: str = "", service_keys: dict[str, str] | None = None, trusted: str = "127.0.0.0/8",
                 tls_certs: dict | None = None, quota: dict | None = None, extra: str = "") -> None:
        super().__init__()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = str(Path(binary).resolve())  # it runs with cwd = workdir
        self.ports = {svc: free_port() for svc in services}
        self.config = self.workdir / "basalt-store.toml"
        (self.workdir / "spool").mkdir(exist_ok=True)
        (self.workdir / "users.toml").write_text(users_toml)
        lmtp = f'lmtp_listen = "{LOOPBACK}:{self.ports["lmtp"]}"\n' if "lmtp" in self.ports else ""
        text = (f'[log]\nlevel = "debug"\n[store]\nshard_name = {_toml_str(shard)}\nspool_root = "spool"\n'
                f'index_root = "index"\nusers_file = "users.toml"\n{lmtp}{store_keys}\n')
        for svc in ("imap", "pop3"):
            if svc in self.ports:
                text += f'[{svc}]\nlisten = "{LOOPBACK}:{self.ports[svc]}"\n' + (service_keys or {}).get(svc, "")
        text += f'[auth]\ntrusted_networks = [{_toml_str(trusted)}]\n'
        for name, password in (masters or {}).items():
            text += f'[[auth.master]]\nname = {_toml_str(name)}\npassword = {_toml_str("{PLAIN}" + password)}\n'
        if tls_certs:
            text += f'[tls]\ncertificate = {_toml_str(tls_certs["cert"])}\nprivate_key = {_toml_str(tls_certs["key"])}\n'
        if quota:
            text += "[quota]\n" + "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in quota.items())
        self.certs = tls_certs
        self.config.write_text(text + extra)
        self.cli("init")
        # What ShardClients and proxy_config expect of a shard.
        self.shard = shard
        self.imap_port = self.ports.get("imap")
        self.pop3_port = self.ports.get("pop3")
        self.lmtp_port = self.ports.get("lmtp")
        self.master_user, self.master_password = next(iter((masters or {"": ""}).items()))
        self.users: dict[str, str] = {}

    def cli(self, *args: str) -> bytes:
        r = subprocess.run([self.binary, "-c", str(self.config), *args], capture_output=True, timeout=60)
        if r.returncode != 0:
            raise ClusterError(f"basalt-store {args}: {r.stderr.decode(errors='replace')}")
        return r.stdout

    def start(self) -> None:
        self._spawn([self.binary, "-c", str(self.config)], self.workdir / "store.log", self.workdir)
        self._wait_ports(list(self.ports.values()))

    def port(self, service: str) -> int:
        return self.ports[service]

    def lmtp(self):
        c = smtplib.LMTP(LOOPBACK, self.ports["lmtp"], timeout=30)
        c.ehlo_or_helo_if_needed()
        return c

    def lmtp_raw(self, data: bytes, until: bytes = b"221 2.0.0 Bye\r\n", timeout: float = 30) -> bytes:
        """Sends `data` (pipelined commands) on a new LMTP connection and returns all replies,
        greeting included, up to `until` or EOF. Sent from a thread: the store stops reading
        while its replies are unread, and we read them only here."""
        s = socket.create_connection((LOOPBACK, self.ports["lmtp"]), timeout=timeout)
        sender = threading.Thread(target=s.sendall, args=(data,))
        sender.start()
        out = b""
        while not out.endswith(until):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        sender.join()
        s.close()
        return out

    def log_text(self) -> str:
        return (self.workdir / "store.log").read_text(errors="replace")

    def close_line(self, needle: str, after: int = 0, timeout: float = 10) -> str:
        """The latest session-end log line (after offset `after` of the log) containing `needle`,
        e.g. "user=alice " or "ip=127.0.0.1:5000 "; waits for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [l for l in self.log_text()[after:].splitlines() if "action=close" in l and needle in l]
            if lines:
                return lines[-1]
            time.sleep(0.05)
        raise AssertionError(f"no close line with {needle!r}:\n{log_tail(self.workdir / 'store.log')}")


def store_proxy(workdir: Path | str, binary: Path | str, store: "Store", protocol: str,
                users: dict[str, str], master: tuple[str, str] = ("proxy", "pw")) -> tuple["Proxy", int]:
    """basalt-proxy (file directory with {user: password}, shard "a") in front of `store`,
    logging in with the master user; one `protocol` listener. Returns (proxy, its port), not
    started."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    users_file = workdir / "proxy-users.toml"
    users_file.write_text(users_toml([(u, "{PLAIN}" + pw, "a", "active") for u, pw in users.items()]))
    port = free_port()
    cfg = {
        "log": {"level": "info"},
        "proxy": {"workers": 1, "trusted_networks": ["127.0.0.0/8"], "auth_failure_delay_ms": 0},
        "listener": [{"protocol": protocol, "address": f"{LOOPBACK}:{port}"}],
        "admin": {"address": f"{LOOPBACK}:{free_port()}", "token": "t" * 32},
        "directory": {"backend": "file", "file": str(users_file)},
        "shard": [{"name": "a", protocol: f"{LOOPBACK}:{store.port(protocol)}", "login": "master",
                   "master_user": master[0], "master_password": master[1]}],
    }
    return Proxy(workdir / "proxy", binary, to_toml(cfg)), port


def find_store_binary(build_dir: Path | str) -> Path | None:
    p = Path(build_dir) / "backend" / "basalt-store"
    return p if p.exists() else None


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------- TOML


def _toml_str(s: str) -> str:
    out = ['"']
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, dict) for x in v)


def to_toml(data: dict) -> str:
    """A tiny TOML writer: strings, ints, floats, bools, lists, tables, arrays of tables."""
    lines: list[str] = []

    def table(d: dict, path: list[str]) -> None:
        for k, v in d.items():
            if not isinstance(v, dict) and not _is_table_array(v) and v is not None:
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in d.items():
            sub = path + [_toml_key(k)]
            if isinstance(v, dict):
                lines.append("")
                lines.append(f"[{'.'.join(sub)}]")
                table(v, sub)
            elif _is_table_array(v):
                for item in v:
                    lines.append("")
                    lines.append(f"[[{'.'.join(sub)}]]")
                    table(item, sub)

    table(data, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def deep_merge(base: dict, overrides: dict) -> dict:
    """A copy of base with overrides merged in (dicts recursively; anything else replaces)."""
    out = dict(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def proxy_config_dict(slapd: Slapd, shards: dict[str, Dovecot], listeners: dict[str, int],
                      certs: dict | None = None, *, shard_hosts: dict[str, list[str]] | None = None,
                      admin_port: int | None = None, admin_token: str | None = None,
                      **overrides) -> dict:
    """The proxy config as nested dicts (see proxy_config)."""
    cfg: dict = {
        "log": {"level": "info"},
        "proxy": {"workers": 2, "trusted_networks": ["127.0.0.0/8", "::1/128"],
                  "auth_failure_delay_ms": 2000, "auth_failure_max_delay_ms": 2000,
                  "drain_timeout_s": 1},
    }
    if certs:
        cfg["tls"] = {"certificate": certs["cert"], "private_key": certs["key"]}
    cfg["listener"] = [{"protocol": proto, "address": f"{LOOPBACK}:{port}"}
                       for proto, port in listeners.items()]
    cfg["admin"] = {"address": f"{LOOPBACK}:{admin_port or free_port()}",
                    "token": admin_token or secrets.token_hex(16)}
    cfg["directory"] = {
        "backend": "ldap",
        "cache_ttl_s": 30,
        "ldap": {
            "uris": [slapd.uri],
            "bind_dn": slapd.service_dn,
            "bind_password": slapd.service_password,
            "base_dn": slapd.people_dn,
            "user_filter": "(&(objectClass=inetOrgPerson)(uid=%u))",
            "route_attribute": "mailHost",
            "status_attribute": "mailUserStatus",
            "operation_timeout_ms": 2000,
            "connect_timeout_ms": 1000,
        },
    }
    hosts = shard_hosts or {}
    cfg["shard"] = [{
        "name": name,
        "hosts": list(hosts.get(name, [f"{name}.mail.test"])),
        "imap": f"{LOOPBACK}:{d.imap_port}",
        "pop3": f"{LOOPBACK}:{d.pop3_port}",
        "lmtp": f"{LOOPBACK}:{d.lmtp_port}",
        "login": "master",
        "master_user": d.master_user,
        "master_password": d.master_password,
    } for name, d in shards.items()]
    return deep_merge(cfg, overrides)


def proxy_config(slapd: Slapd, shards: dict[str, Dovecot], listeners: dict[str, int],
                 certs: dict | None = None, **overrides) -> str:
    """Renders basalt-proxy's TOML for a Slapd and Dovecot shards.

    listeners: {protocol: port} with protocol in imap, imaps, pop3, pop3s. Keyword
    arguments shard_hosts={name: [hosts]}, admin_port, admin_token are recognised; any
    other keyword is deep-merged into the config, e.g. proxy={"workers": 1},
    directory={"cache_ttl_s": 0}."""
    return to_toml(proxy_config_dict(slapd, shards, listeners, certs, **overrides))


def find_proxy_binary(binary_dir: Path | str | None) -> Path | None:
    if binary_dir is None:
        return None
    d = Path(binary_dir)
    for candidate in (d / "proxy" / "basalt-proxy", d / "basalt-proxy", d):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


# --------------------------------------------------------------------------- demo cluster

DEMO_PASSWORD = "demo-pass"
DEMO_USERS = [
    dict(uid="alice", password=DEMO_PASSWORD, mail_host="a.mail.test", status="active"),
    dict(uid="bob", password=DEMO_PASSWORD, mail_host="a.mail.test", status="active"),
    dict(uid="carol", password=DEMO_PASSWORD, mail_host="b.mail.test", status="active"),
    dict(uid="dave", password=DEMO_PASSWORD, mail_host="b.mail.test", status="active"),
    dict(uid="erin", password=DEMO_PASSWORD, mail_host="a.mail.test", status="moving"),
    dict(uid="frank", password=DEMO_PASSWORD, mail_host="b.mail.test", status="disabled"),
]
DEMO_PORTS = {"imap": 1143, "imaps": 1993, "pop3": 1110, "pop3s": 1995}


def bench_users(n: int, password: str = DEMO_PASSWORD) -> list[dict]:
    """n synthetic users user00000.. alternating between shards a and b."""
    return [dict(uid=f"user{i:05d}", password=password,
                 mail_host=f"{'ab'[i % 2]}.mail.test", status="active") for i in range(n)]


class Cluster:
    """The demo: certs, slapd (DEMO_USERS + n_users synthetic), Dovecot shards a and b
    with a few messages per user and a mailbox only their shard has, and basalt-proxy
    in front when its binary is found."""

    def __init__(self, workdir: Path | str, binary_dir: Path | str | None = None,
                 n_users: int = 0, demo: bool = True, proxy_binary: Path | str | None = None,
                 ports: dict[str, int] | None = None, fixed_ports: bool = False,
                 proxy_overrides: dict | None = None, store_binary: Path | str | None = None) -> None:
        """store_binary: run basalt-store shards (LMTP, IMAP, POP3) instead of Dovecot."""
        self.workdir = Path(workdir).resolve()
        self.store_binary = Path(store_binary) if store_binary else None
        self.users = (list(DEMO_USERS) if demo else []) + bench_users(n_users)
        self.demo = demo
        self.proxy_binary = Path(proxy_binary) if proxy_binary else find_proxy_binary(binary_dir)
        wanted = dict(DEMO_PORTS if fixed_ports else {}, **(ports or {}))
        self.listener_ports = {p: (wanted[p] if p in wanted and port_is_free(wanted[p])
                                   else free_port()) for p in DEMO_PORTS}
        self.proxy_overrides = proxy_overrides or {}
        self.certs: dict | None = None
        self.slapd: Slapd | None = None
        self.shards: dict[str, Dovecot | Store] = {}
        self.proxy: Proxy | None = None

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.workdir.chmod(0o711)
        self.certs = make_certs(self.workdir / "certs")
        self.slapd = Slapd(self.workdir / "slapd", self.users)
        self.slapd.start()
        for name in ("a", "b"):
            users = {u["uid"]: u["password"] for u in self.users
                     if u.get("mail_host") == f"{name}.mail.test"}
            shard = self._make_shard(name, users)
            self.shards[name] = shard
            shard.start()
            if self.demo:
                self._fill(name, shard)
        if self.proxy_binary:
            text = proxy_config(self.slapd, self.shards, self.listener_ports, self.certs,
                                **self.proxy_overrides)
            self.proxy = Proxy(self.workdir / "proxy", self.proxy_binary, text)
            self.proxy.start()

    def _make_shard(self, name: str, users: dict[str, str]) -> Dovecot | Store:
        if not self.store_binary:
            return Dovecot(self.workdir / f"shard-{name}", name, users)
        # Every store knows every user, so it can tell "not on this shard" from "unknown".
        table = users_toml([(u["uid"], ssha(u["password"]), u.get("mail_host", "").split(".")[0],
                             u.get("status", "active")) for u in self.users])
        # A generous quota, as a production store would have (docs/store.md, Quotas).
        store = Store(self.workdir / f"shard-{name}", self.store_binary, table, shard=name,
                      services=("lmtp", "imap", "pop3"), masters={"proxy": "master-" + secrets.token_hex(6)},
                      quota={"storage_bytes": 1 << 30, "messages": 0})
        store.users = users
        return store

    def _fill(self, name: str, shard: Dovecot | Store) -> None:
        only = f"Shard-{name.upper()}-Only"
        for user in DEMO_USERS:
            # Moving and disabled users get no mail: a basalt-store refuses it (LMTP 4xx/5xx).
            if user["uid"] not in shard.users or user.get("status") != "active":
                continue
            uid = user["uid"]
            shard.create_mailbox(uid, only)
            for i, subject in enumerate(["Welcome to Basalt", f"You live on shard {name}",
                                         "Lunch on Friday?"]):
                shard.deliver(uid, make_message(subject, f"Message {i + 1} for {uid}.\n",
                                                to=f"{uid}@example.org"))
            shard.deliver(uid, make_message(f"Filed on shard {name}", to=f"{uid}@example.org"),
                          mailbox=only)

    def stop(self) -> None:
        stop_all([self.proxy, *self.shards.values(), self.slapd])

    def __enter__(self) -> "Cluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def state(self) -> dict:
        return {
            "pid": os.getpid(),
            "workdir": str(self.workdir),
            "certs": self.certs,
            "ldap": {"uri": self.slapd.uri, "base_dn": self.slapd.base_dn,
                     "admin_dn": self.slapd.admin_dn, "admin_password": self.slapd.admin_password,
                     "service_dn": self.slapd.service_dn,
                     "service_password": self.slapd.service_password, "pid": self.slapd.pid},
            "shards": {n: {"imap": s.imap_port, "pop3": s.pop3_port, "lmtp": s.lmtp_port,
                           "master_user": s.master_user, "master_password": s.master_password,
                           "pid": s.pid, "log": str(s.log_path)}
                       for n, s in self.shards.items()},
            "proxy": None if not self.proxy else {
                "listeners": {p: port for p, _, port in self.proxy.listeners},
                "admin": list(self.proxy.admin_address or ()), "admin_token": self.proxy.admin_token,
                "pid": self.proxy.pid, "log": str(self.proxy.log_path)},
            "users": [{k: v for k, v in u.items()} for u in DEMO_USERS] if self.demo else [],
        }

    def howto(self) -> str:
        s = self.state()
        lines = [f"Basalt demo cluster in {self.workdir}", "",
                 f"LDAP       {s['ldap']['uri']}  base {s['ldap']['base_dn']}",
                 f"           ldapsearch -x -H {s['ldap']['uri']} -D '{s['ldap']['admin_dn']}' "
                 f"-w '{s['ldap']['admin_password']}' -b {s['ldap']['base_dn']} '(uid=alice)'"]
        for n, sh in s["shards"].items():
            lines.append(f"shard {n}    imap 127.0.0.1:{sh['imap']}  pop3 127.0.0.1:{sh['pop3']}  "
                         f"lmtp 127.0.0.1:{sh['lmtp']}")
        lines += ["", f"Users (password '{DEMO_PASSWORD}'): alice, bob (shard a), carol, dave (shard b),",
                  "  erin (status moving), frank (status disabled).", ""]
        pw = DEMO_PASSWORD
        fetch = "-X 'FETCH 1:* (FLAGS ENVELOPE)'"
        if self.proxy:
            ca = self.certs["ca"]
            p = s["proxy"]["listeners"]
            lines += [
                "Through the proxy (CA certificate: --cacert):",
                "  # IMAP + STARTTLS: the messages in alice's INBOX (shard a)",
                f"  curl --ssl-reqd --cacert {ca} 'imap://127.0.0.1:{p['imap']}/INBOX' -u alice:{pw} {fetch}",
                "  # IMAPS: carol's INBOX, then her mailboxes (Shard-B-Only: she was routed to shard b)",
                f"  curl --cacert {ca} 'imaps://localhost:{p['imaps']}/INBOX' -u carol:{pw} {fetch}",
                f"  curl --cacert {ca} 'imaps://localhost:{p['imaps']}/' -u carol:{pw}",
                "  # POP3 + STLS: list bob's messages; POP3S: dave's first message",
                f"  curl --ssl-reqd --cacert {ca} 'pop3://127.0.0.1:{p['pop3']}/' -u bob:{pw}",
                f"  curl --cacert {ca} 'pop3s://localhost:{p['pop3s']}/1' -u dave:{pw}",
                "  # refused: erin (moving, temporary failure) and frank (disabled)",
                f"  curl --cacert {ca} 'imaps://localhost:{p['imaps']}/INBOX' -u frank:{pw}",
                "  # by hand",
                f"  openssl s_client -quiet -CAfile {ca} -connect localhost:{p['imaps']}",
                f"Admin API 127.0.0.1:{s['proxy']['admin'][1]}  token {s['proxy']['admin_token']}",
                f"Proxy log {s['proxy']['log']}",
            ]
        else:
            a_imap = s["shards"]["a"]["imap"]
            lines += ["No proxy binary found: build it, then pass --proxy-binary build/proxy/basalt-proxy",
                      "(or --build-dir). The shards can be used directly meanwhile:",
                      f"  curl 'imap://127.0.0.1:{a_imap}/INBOX' -u alice:{pw} {fetch}"]
        lines += ["", "Ctrl-C (or basalt_cluster.py down --workdir DIR) stops everything."]
        return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _state_path(workdir: Path) -> Path:
    return workdir / "cluster.json"


def interrupt_on_termination() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt (in the main thread), so that a command that
    runs daemons until it is told to stop leaves through its `finally` as on Ctrl-C."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def cmd_up(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    state_file = _state_path(workdir)
    if state_file.exists():
        old = json.loads(state_file.read_text())
        if _pid_alive(old.get("pid")):
            print(f"a cluster is already running in {workdir} (pid {old['pid']})", file=sys.stderr)
            return 1
    # The demo starts from scratch every time: a previous run's directory and mail would carry
    # passwords this run no longer knows.
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / "slapd").is_dir():
            print(f"{workdir} is not empty and not a Basalt demo directory; refusing to reuse it", file=sys.stderr)
            return 1
        shutil.rmtree(workdir)
    ports = {p: getattr(args, f"{p}_port") for p in DEMO_PORTS if getattr(args, f"{p}_port")}
    store = None
    if args.shards == "basalt":
        store = args.store_binary or find_store_binary(args.build_dir)
        if not store:
            print(f"basalt-store not found in {args.build_dir}: build it, pass --store-binary, "
                  f"or use --shards dovecot", file=sys.stderr)
            return 1
    cluster = Cluster(workdir, binary_dir=args.build_dir, proxy_binary=args.proxy_binary,
                      n_users=args.users, ports=ports, fixed_ports=True, store_binary=store)
    interrupt_on_termination()
    try:
        cluster.start()
        state_file.write_text(json.dumps(cluster.state(), indent=2) + "\n")
        print(cluster.howto(), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        state_file.unlink(missing_ok=True)
        print("stopped", flush=True)
    return 0


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie waiting to be reaped is not a running cluster
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cmd_down(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    state_file = _state_path(workdir)
    if not state_file.exists():
        print(f"no cluster state in {workdir}", file=sys.stderr)
        return 1
    state = json.loads(state_file.read_text())
    pid = state.get("pid")
    if _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Anything the 'up' process could not stop (e.g. it was SIGKILLed).
    daemons = [state["ldap"].get("pid")] + [s.get("pid") for s in state["shards"].values()]
    if state.get("proxy"):
        daemons.append(state["proxy"].get("pid"))
    for daemon_pid in daemons:
        if _pid_alive(daemon_pid):
            _kill_group(daemon_pid)
    state_file.unlink(missing_ok=True)
    print("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the demo cluster and stay in the foreground")
    up.add_argument("--workdir", required=True)
    up.add_argument("--proxy-binary", help="path to basalt-proxy (default: look in --build-dir)")
    up.add_argument("--build-dir", default=os.environ.get("BASALT_BUILD_DIR", "build"))
    up.add_argument("--users", type=int, default=0, help="extra synthetic users (user00000...)")
    up.add_argument("--shards", choices=("basalt", "dovecot"), default="basalt",
                    help="what runs the shards: basalt-store (default) or Dovecot")
    up.add_argument("--store-binary", help="path to basalt-store (default: look in --build-dir)")
    for proto, port in DEMO_PORTS.items():
        up.add_argument(f"--{proto}-port", type=int, default=None,
                        help=f"proxy {proto} port (default {port}, a free one if taken)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop a cluster started with up")
    down.add_argument("--workdir", required=True)
    down.set_defaults(func=cmd_down)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
