"""A real browser against the estate's webmail: Debian's Chromium, driven by Selenium.

Used by the webmail tests and scripts/benchmark-webmail.py (needs the ``test`` extra and the
chromium, chromium-driver and libnss3-tools packages, which scripts/bootstrap.sh installs).
The browser trusts only the CA it is given, in a certificate store of its own (Chromium on
Linux reads NSS, not /etc/ssl), and resolves the names it is given to the addresses given, as
the estate's DNS would: nothing on the machine is changed, nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Seconds between checks while waiting for a page: Selenium's default (0.5 s) would dominate
# the timings of a page that takes a fraction of a second.
POLL = 0.02


@contextmanager
def chromium(home: Path, ca: Path, resolve: Mapping[str, str]) -> Iterator[WebDriver]:
    """Headless Chromium with ``home`` as its HOME (its NSS store holds only ``ca``), mapping
    each name of ``resolve`` to its address."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    if not (nssdb / "cert9.db").exists():
        subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "hermes-ca", "-t", "C,,", "-i", str(ca)], check=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    rules = ", ".join(f"MAP {name} {address}" for name, address in sorted(resolve.items()))
    for argument in (
        "--headless=new",
        "--no-sandbox",  # runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--host-resolver-rules={rules}",
        f"--user-data-dir={home / 'profile'}",
    ):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    service = Service(executable_path=CHROMEDRIVER, env={**os.environ, "HOME": str(home)})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_login(driver: WebDriver, url: str, *, wait: float = 60) -> None:
    """Roundcube's login form at ``url``, in a fresh session."""
    driver.delete_all_cookies()
    driver.get(url)
    WebDriverWait(driver, wait, poll_frequency=POLL).until(expected_conditions.element_to_be_clickable((By.ID, "rcmloginuser")))


def submit_login(driver: WebDriver, user: str, password: str, *, wait: float = 60) -> bool:
    """Fills in the open login form and clicks Login: True when the next page is the mailbox,
    False when it is the login form again (Roundcube refused)."""
    driver.find_element(By.ID, "rcmloginuser").send_keys(user)
    driver.find_element(By.ID, "rcmloginpwd").send_keys(password)
    submit = driver.find_element(By.ID, "rcmloginsubmit")
    submit.click()
    try:
        # The form posts: the old page goes, then the new one shows one or the other.
        WebDriverWait(driver, wait, poll_frequency=POLL).until(expected_conditions.staleness_of(submit))
        WebDriverWait(driver, wait, poll_frequency=POLL).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#messagelist tbody") or d.find_elements(By.ID, "rcmloginsubmit")
        )
    except TimeoutException as error:
        raise AssertionError(f"webmail answered {user}'s login with neither the mailbox nor the form in {wait}s") from error
    return bool(driver.find_elements(By.CSS_SELECTOR, "#messagelist tbody"))


def log_in(driver: WebDriver, url: str, user: str, password: str, *, wait: float = 60) -> bool:
    open_login(driver, url, wait=wait)
    return submit_login(driver, user, password, wait=wait)
