#!/usr/bin/env python3
"""IMAP logins through the proxy against logins straight to the store, side by side in one run.

    scripts/benchmark-proxy.py --proxy 10.247.0.10 --store 10.247.0.21 --user bob \\
        --password-file pw.txt --ca .lab/pki/ca.crt [--logins 200] [--concurrency 8]

Each login is a full session as a mail client makes it: TCP, TLS (implicit, port 993, the
certificate verified), LOGIN, LOGOUT. Sequential logins give the latency of one login (median,
95th percentile) and the proxy's added latency (proxy median - store median); concurrent ones
give logins per second. The password is read from a file, never from the command line.

The store is measured twice: as a client sees it, and with the client acknowledging at once
(TCP_QUICKACK after the handshake). Cyrus writes its greeting while its TLS session tickets
are still unacknowledged, so Nagle holds it until the client's delayed ACK, about 40 ms; the
second row is the store's own cost, the fair baseline for the proxy's overhead.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from hermes.lab.benchmark import add_login_arguments, benchmark_parser, read_password

Client = type[imaplib.IMAP4_SSL]


class QuickAckIMAP4(imaplib.IMAP4_SSL):
    """A client that acknowledges at once what the server sends after the TLS handshake."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        # imaplib's hook for the connected (TLS) socket, before it reads the greeting; private,
        # so not in typeshed.
        connection: socket.socket = super()._create_socket(timeout)  # type: ignore[misc]
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return connection


def login(host: str, user: str, password: str, context: ssl.SSLContext, client: Client) -> float:
    started = time.perf_counter()
    connection = client(host, 993, ssl_context=context, timeout=30)
    connection.login(user, password)
    connection.logout()
    return time.perf_counter() - started


def measure(
    host: str, user: str, password: str, context: ssl.SSLContext, client: Client, *, logins: int, concurrency: int
) -> dict[str, float]:
    login(host, user, password, context, client)  # warm: caches, processes, connections
    latencies = sorted(login(host, user, password, context, client) for _ in range(logins))
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: login(host, user, password, context, client), range(logins)))
    elapsed = time.perf_counter() - started
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "logins_per_s": logins / elapsed,
    }


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--proxy", required=True, help="address of a proxy")
    parser.add_argument("--store", required=True, help="address of the user's live store")
    add_login_arguments(parser, ca_help="the CA that signed both certificates", logins=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    password = read_password(args)
    context = ssl.create_default_context(cafile=str(args.ca))
    results = {
        name: measure(host, args.user, password, context, client, logins=args.logins, concurrency=args.concurrency)
        for name, host, client in (
            ("store", args.store, imaplib.IMAP4_SSL),
            ("store, quick ACK", args.store, QuickAckIMAP4),
            ("proxy", args.proxy, imaplib.IMAP4_SSL),
        )
    }
    print(f"{'path':<18}{'median ms':>12}{'p95 ms':>10}{'logins/s':>12}")
    for name, result in results.items():
        print(f"{name:<18}{result['median_ms']:>12.1f}{result['p95_ms']:>10.1f}{result['logins_per_s']:>12.1f}")
    baseline = results["store, quick ACK"]["median_ms"]
    print(f"proxy overhead, median, over the store's own cost: {results['proxy']['median_ms'] - baseline:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
