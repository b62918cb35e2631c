#!/usr/bin/python3
"""Per-phase timing of IMAP logins from a packet capture on loopback.

  tcpdump -i lo -n -U -w cap.pcap 'tcp port PORT' &  # while loadgen login --concurrency 1 runs
  bench/proxy/timeline.py cap.pcap PORT [--clients 127.0.3.]

For each client connection to PORT (clients: source addresses starting with the prefix) it
takes the first packet of each exchange of loadgen's login (greeting, LOGIN, its OK, SELECT,
its answer, LOGOUT, the BYE, the server's FIN), times from the client's SYN, and prints the
median of each over all complete connections: where an unloaded login spends its time, without
slowing anything down the way strace does.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess

PHASES = ["greeting", "LOGIN", "login OK", "SELECT", "SELECT answer", "LOGOUT", "BYE", "FIN"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("port")
    ap.add_argument("--clients", default="127.0.3.")
    a = ap.parse_args()
    out = subprocess.run(["tcpdump", "-r", a.pcap, "-n", "-tt"], capture_output=True, text=True,
                         check=True).stdout
    conns: dict[str, list[float]] = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) < 7 or f[1] != "IP":
            continue
        t, src, dst, flags = float(f[0]), f[2], f[4].rstrip(":"), f[6]
        length = int(f[-1]) if f[-1].isdigit() else 0
        if dst.endswith("." + a.port) and src.startswith(a.clients):
            client = src
        elif src.endswith("." + a.port) and dst.startswith(a.clients):
            client = dst
        else:
            continue
        if flags == "[S],":
            conns[client] = [t]
        elif client in conns and (length > 0 or "F" in flags):
            conns[client].append(t)
    rows = [[(t - c[0]) * 1000 for t in c[1:len(PHASES) + 1]] for c in conns.values() if len(c) > len(PHASES)]
    if not rows:
        print("no complete login in the capture")
        return 1
    print(f"{len(rows)} logins; median ms from the client's SYN:")
    for name, column in zip(PHASES, zip(*rows)):
        print(f"  {name:14s} {statistics.median(column):7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
