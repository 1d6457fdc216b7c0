#!/usr/bin/env python3
"""Webmail: time from pressing "Login" to the user's message list, in a real browser.

    scripts/benchmark-webmail.py --name webmail.access.test --address 10.247.0.50 --user bob \\
        --password-file pw.txt --ca .lab/pki/ca.crt [--logins 20]

Each login starts a fresh session (cookies cleared) in headless Chromium (hermes.lab.browser),
fills in the form and clicks Login; the clock stops when the message list shows its first
row, so the user needs at least one message. Reports the median and the slowest. The password
is read from a file, never from the command line.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from hermes.lab.benchmark import add_login_arguments, benchmark_parser, read_password
from hermes.lab.browser import POLL, chromium, open_login, submit_login


def login_to_list(driver: WebDriver, url: str, user: str, password: str) -> float:
    """Seconds from the click on Login to the first row of the message list."""
    open_login(driver, url)
    started = time.perf_counter()
    if not submit_login(driver, user, password):
        raise SystemExit(f"benchmark-webmail: webmail refused {user}'s login")
    WebDriverWait(driver, 60, poll_frequency=POLL).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#messagelist tbody tr"))
    return time.perf_counter() - started


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--name", required=True, help="the name users browse to (on the certificate)")
    parser.add_argument("--address", required=True, help="the webmail host's address")
    add_login_arguments(parser, ca_help="the CA that signed webmail's certificate", logins=20)
    args = parser.parse_args()
    password = read_password(args)
    url = f"https://{args.name}/"
    with tempfile.TemporaryDirectory() as home, chromium(Path(home), args.ca, {args.name: args.address}) as driver:
        login_to_list(driver, url, args.user, password)  # warm: PHP's opcache, the proxy
        timings = [login_to_list(driver, url, args.user, password) for _ in range(args.logins)]
    print(
        f"{args.logins} logins: login to message list median {statistics.median(timings) * 1000:.0f} ms, "
        f"slowest {max(timings) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
