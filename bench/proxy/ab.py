#!/usr/bin/python3
"""A/B of basalt-proxy builds behind one slapd and two Dovecot shards (the setup of run.py,
without nginx and the Dovecot proxy): every binary runs as its own proxy at the same time and
the measurements alternate between them (ABBA order per round), so load from other jobs on the
machine falls on all of them alike.

  bench/proxy/ab.py OLD_BINARY NEW_BINARY [...] [--rounds 4] [--what login,seq,fetch]

A binary may carry [proxy] settings of its own, to compare settings of one build:
  bench/proxy/ab.py build/proxy/basalt-proxy:warm_shard_connections=0 build/proxy/basalt-proxy

login: --logins IMAP logins (connect, LOGIN, SELECT, LOGOUT) at 50 concurrent clients;
seq: 200 sequential logins (p50 = unloaded latency); fetch: --fetches x 10 MB FETCH on one
stream; fetchtls: the same over IMAPS (TLS between client and proxy); syscalls: strace -c -f attached during --logins logins at 50 clients (counts per login,
which do not depend on the machine's load). CPU is the proxy's utime + stime from
/proc/PID/stat over each run. Prints one line per run and, at the end, median and min-max per
binary and measure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def load_run_module():
    spec = importlib.util.spec_from_file_location("run", HERE / "run.py")
    run = importlib.util.module_from_spec(spec)
    argv, sys.argv = sys.argv, ["run.py"]
    spec.loader.exec_module(run)
    sys.argv = argv
    return run


def proc_cpu(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds: counted in clock ticks (10 ms),
    so a run must use a second or more for a figure within 1 %."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sched_cpu(pid: int) -> float:
    """Run time of every thread of `pid` from schedstat (nanoseconds): for short runs."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def parse_spec(spec: str) -> tuple[str, dict]:
    """BINARY[:key=value,...] -> (binary, [proxy] settings); values are TOML literals."""
    import tomllib
    binary, _, rest = spec.partition(":")
    overrides = tomllib.loads("\n".join(rest.split(","))) if rest else {}
    return binary, overrides


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--what", default="login,seq,fetch")
    ap.add_argument("--fetches", type=int, default=5)
    ap.add_argument("--logins", type=int, default=2000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()

    run = load_run_module()
    specs = [parse_spec(b) for b in a.bins]
    args = argparse.Namespace(users=a.users, basalt_workers=a.workers, basalt_log_level="info",
                              basalt_cache_ttl=0, build_dir=str(HERE.parents[1] / "build-rel"),
                              proxy_binary=specs[0][0], no_install=True, connections=200,
                              keep_workdir=False, auth_threads=1)
    bench = run.Bench(args)
    bench.proxy_overrides = specs[0][1]
    bench.start_dovecot_proxy = lambda: None
    bench.start_nginx = lambda: None
    run.ensure_packages = lambda allow: ""
    names = [f"b{i}" for i in range(len(a.bins))]
    pids: dict[str, int] = {}
    ports: dict[str, dict] = {}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        bench.setup()
        pids["b0"], ports["b0"] = bench.basalt.pid, bench.ports["basalt"]
        for name, (binary, overrides) in zip(names[1:], specs[1:]):
            bench.proxy_binary = Path(binary)
            bench.proxy_overrides = overrides
            bench.start_basalt()
            pids[name], ports[name] = bench.basalt.pid, bench.ports["basalt"]
        for name, binary in zip(names, a.bins):
            print(f"{name} = {binary} (pid {pids[name]})", flush=True)

        def syscalls(name: str) -> None:
            out = bench.workdir / f"strace-{name}.txt"
            tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(pids[name]), "-o", str(out)],
                                      stderr=subprocess.DEVNULL)
            time.sleep(1)
            r = bench.loadgen("login", "basalt", "--users", str(bench.users_file), "--concurrency", "50",
                              "--count", str(a.logins), "--offset", str(bench.next_offset(a.logins)),
                              "--sources", ",".join(run.CLIENT_SOURCES))
            tracer.send_signal(signal.SIGINT)
            tracer.wait()
            ok = max(1, r["ok"])
            rows = []
            for line in out.read_text().splitlines():
                f = line.split()
                if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                    errors = int(f[4]) if len(f) == 6 else 0
                    rows.append((int(f[3]) / ok, errors / ok, f[-1]))
            total = sum(c for c, _, _ in rows)
            detail = ", ".join(f"{n} {c:.2f}" + (f" ({e:.2f} failed)" if e else "")
                               for c, e, n in sorted(rows, reverse=True) if c >= 0.05)
            print(f"  syscalls {name}: {total:.1f} per login ({r['ok']} logins): {detail}", flush=True)

        def measure(what: str, name: str) -> None:
            if what == "syscalls":
                return syscalls(name)
            bench.ports["basalt"] = ports[name]
            c0, s0 = proc_cpu(pids[name]), sched_cpu(pids[name])
            if what in ("fetch", "fetchtls"):
                bench.ports["basalt-tls"] = {"imap": ports[name]["imaps"]}
                r = bench.loadgen("fetch", "basalt" if what == "fetch" else "basalt-tls", "--user", run.BIG_USER,
                                  "--password", run.PASSWORD, "--streams", "1", "--fetches", str(a.fetches))
                mb = r["bytes"] / 1e6
                cpu = (proc_cpu(pids[name]) - c0) * 1000 / max(mb, 1e-9)
                exact = (sched_cpu(pids[name]) - s0) * 1000 / max(mb, 1e-9)
                print(f"  {what} {name}: {r['mb_per_s']:6.0f} MB/s  cpu {cpu:.3f} ms/MB (schedstat {exact:.3f})  "
                      f"errors {r['errors']}", flush=True)
                results.setdefault((what, name), []).append((cpu, r["mb_per_s"]))
                return
            conc, count = ("50", a.logins) if what == "login" else ("1", 200)
            r = bench.loadgen("login", "basalt", "--users", str(bench.users_file), "--concurrency", conc,
                              "--count", str(count), "--offset", str(bench.next_offset(count)),
                              "--sources", ",".join(run.CLIENT_SOURCES))
            cpu = (proc_cpu(pids[name]) - c0) * 1000 / max(1, r["ok"])
            exact = (sched_cpu(pids[name]) - s0) * 1000 / max(1, r["ok"])
            print(f"  {what:5s} {name}: {r['rate']:6.0f}/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.2f} ms  "
                  f"cpu {cpu:.3f} ms/login (schedstat {exact:.3f})  errors {r['errors']}", flush=True)
            results.setdefault((what, name), []).append((cpu, r["p50_ms"]))

        for name in names:  # warm up: index files, LDAP, caches
            measure("seq", name)
        results.clear()
        for rnd in range(a.rounds):
            order = names if rnd % 2 == 0 else names[::-1]
            print(f"round {rnd + 1} (load {os.getloadavg()[0]:.1f})", flush=True)
            for what in a.what.split(","):
                for name in order:
                    bench.ports["basalt"] = ports[name]
                    measure(what, name)
        print("\nsummary: median [min-max] over rounds", flush=True)
        for what in a.what.split(","):
            for name in names:
                rows = results.get((what, name), [])
                if not rows:
                    continue
                cpu = [r[0] for r in rows]
                other = [r[1] for r in rows]
                unit, label = ("ms/MB", "MB/s") if what.startswith("fetch") else ("ms/login", "p50 ms")
                print(f"{what:5s} {name}: cpu {statistics.median(cpu):.3f} [{min(cpu):.3f}-{max(cpu):.3f}] {unit}"
                      f"   {label} {statistics.median(other):.2f} [{min(other):.2f}-{max(other):.2f}]", flush=True)
        bench.finished = True
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
