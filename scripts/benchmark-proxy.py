#!/usr/bin/env python3
"""IMAP logins through the proxy against logins straight to the store, side by side in one run.

    scripts/benchmark-proxy.py --proxy 10.247.0.10 --store 10.247.0.21 --user bob \\
        --password-file pw.txt --ca .lab/pki/ca.crt [--logins 200] [--concurrency 8]

Each login is a full session as a mail client makes it: TCP, TLS (implicit, port 993, the
certificate verified), LOGIN, LOGOUT. Sequential logins give the latency of one login (median,
95th percentile) and the proxy's added latency (proxy median - store median); concurrent ones
give logins per second. The password is read from a file, never from the command line.
"""

from __future__ import annotations

import argparse
import imaplib
import ssl
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def login(host: str, user: str, password: str, context: ssl.SSLContext) -> float:
    started = time.perf_counter()
    connection = imaplib.IMAP4_SSL(host, 993, ssl_context=context, timeout=30)
    connection.login(user, password)
    connection.logout()
    return time.perf_counter() - started


def measure(host: str, user: str, password: str, context: ssl.SSLContext, *, logins: int, concurrency: int) -> dict[str, float]:
    login(host, user, password, context)  # warm: caches, processes, connections
    latencies = sorted(login(host, user, password, context) for _ in range(logins))
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: login(host, user, password, context), range(logins)))
    elapsed = time.perf_counter() - started
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "logins_per_s": logins / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy", required=True, help="address of a proxy")
    parser.add_argument("--store", required=True, help="address of the user's live store")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument("--ca", required=True, type=Path, help="the CA that signed both certificates")
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    password = args.password_file.read_text().strip()
    context = ssl.create_default_context(cafile=str(args.ca))
    results = {
        name: measure(host, args.user, password, context, logins=args.logins, concurrency=args.concurrency)
        for name, host in (("store", args.store), ("proxy", args.proxy))
    }
    print(f"{'path':<8}{'median ms':>12}{'p95 ms':>10}{'logins/s':>12}")
    for name, result in results.items():
        print(f"{name:<8}{result['median_ms']:>12.1f}{result['p95_ms']:>10.1f}{result['logins_per_s']:>12.1f}")
    print(f"proxy overhead, median: {results['proxy']['median_ms'] - results['store']['median_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
