"""Webmail as its users see it: Debian's Chromium, driven by Selenium from the controller.

The browser trusts only the lab CA (a certificate store of its own), so HTTPS is verified as a
user's browser verifies it, and reaches the webmail host by its service name. Mail comes in
through the hub by SMTP and is read in the browser; mail sent from the browser is found, with
its attachment intact, by IMAP in the recipient's mailbox on the other store pair. Expected
values come from the rendered estate and the scenario's vault. Screenshots are kept under
artifacts/molecule-access/ in the checkout.
"""

from __future__ import annotations

import email
import hashlib
import http.client
import secrets
import smtplib
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from accesslib import CA, PROJECT, RENDERED, address, facts, imap_session, tls
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from hermes.lab.browser import chromium
from hermes.lab.browser import log_in as browser_log_in

ARTIFACTS = PROJECT / "artifacts" / "molecule-access"
WEB = "ac-web"
VARS: dict[str, Any] = facts(WEB)
PROXY_PORTS = {listener["name"]: listener["port"] for listener in RENDERED.get_variables("ac-hub")["hermes_proxy"]["listeners"]}
WEBMAIL: dict[str, Any] = VARS["hermes_webmail"]
PASSWORDS: dict[str, str] = VARS["vault_hermes_user_passwords"]
PLACEMENT: dict[str, str] = VARS["hermes_placement"]
ACCOUNTS = set(PLACEMENT)
URL = f"https://{WEBMAIL['name']}/"
WAIT = 60


def on_other_pairs(user: str) -> str:
    """An account whose mail is on another store pair than ``user``'s."""
    return sorted(u for u in ACCOUNTS if PLACEMENT[u] != PLACEMENT[user])[0]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Chromium trusting only the lab CA, reaching webmail by its name as the estate's DNS would."""
    with chromium(tmp_path_factory.mktemp("browser-home"), CA, {WEBMAIL["name"]: address(WEB)}) as driver:
        driver.set_page_load_timeout(WAIT)
        yield driver


def screenshot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def log_in(driver: WebDriver, user: str, password: str) -> bool:
    return browser_log_in(driver, URL, user, password, wait=WAIT)


def deliver_through_the_hub(user: str, subject: str, body: str) -> None:
    message = EmailMessage()
    # The hub verifies senders: one of the estate's own addresses passes.
    message["From"] = f"postmaster@{WEBMAIL['mail_domain']}"
    message["To"] = f"{user}@{WEBMAIL['mail_domain']}"
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(address("ac-hub"), 25, timeout=30) as smtp:
        smtp.starttls(context=tls())
        smtp.send_message(message)


def fetch_by_subject(user: str, subject: str, timeout: float = 90) -> email.message.Message:
    """The one message with ``subject`` in the user's INBOX, read through the proxy."""
    deadline = time.monotonic() + timeout
    while True:
        with imap_session("ac-hub", PROXY_PORTS["imaps"], user, PASSWORDS[user]) as session:
            session.select("INBOX", readonly=True)
            _, found = session.search(None, "SUBJECT", f'"{subject}"')
            numbers = found[0].split()
            if numbers:
                assert len(numbers) == 1, f"{subject!r} is in {user}'s INBOX {len(numbers)} times"
                _, data = session.fetch(numbers[0], "(RFC822)")
                raw = data[0]
                assert isinstance(raw, tuple)
                return email.message_from_bytes(raw[1])
        assert time.monotonic() < deadline, f"{subject!r} did not reach {user}'s INBOX in {timeout}s"
        time.sleep(2)


def test_http_only_redirects_to_https() -> None:
    plain = http.client.HTTPConnection(address(WEB), 80, timeout=30)
    plain.request("GET", "/?_task=mail", headers={"Host": WEBMAIL["name"]})
    redirect = plain.getresponse()
    assert redirect.status == 301
    assert redirect.getheader("Location") == f"https://{WEBMAIL['name']}/?_task=mail"
    assert b"rcmloginuser" not in redirect.read()

    secure = http.client.HTTPSConnection(address(WEB), 443, timeout=30, context=tls())
    secure.request("GET", "/", headers={"Host": WEBMAIL["name"]})
    page = secure.getresponse()
    assert page.status == 200
    assert page.getheader("Strict-Transport-Security", "").startswith("max-age=")
    assert b"rcmloginuser" in page.read()


def test_only_accounts_log_in(browser: WebDriver) -> None:
    """A vault password without an account, and a wrong password, are refused; the account's
    own password is accepted."""
    user = sorted(ACCOUNTS)[0]
    outsider = next(name for name in PASSWORDS if name not in ACCOUNTS)
    assert not log_in(browser, outsider, PASSWORDS[outsider])
    assert not log_in(browser, user, PASSWORDS[user] + "-wrong")
    assert log_in(browser, user, PASSWORDS[user])


def test_read_mail_that_came_through_the_hub(browser: WebDriver) -> None:
    user = sorted(ACCOUNTS)[0]
    subject = f"through the hub {uuid.uuid4().hex}"
    body = f"read me in a browser {uuid.uuid4().hex}"
    deliver_through_the_hub(user, subject, body)
    fetch_by_subject(user, subject)  # delivered: now the browser must show it
    assert log_in(browser, user, PASSWORDS[user])
    listed = (By.XPATH, f"//table[@id='messagelist']//tr[contains(., '{subject}')]")
    WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located(listed))
    screenshot(browser, "message-list")

    def opened(driver: WebDriver) -> bool:
        driver.find_element(*listed).click()
        return True

    # Roundcube redraws as it goes: the list at its refresh, between finding the row and the
    # click; the preview frame's page when the message loads into it, between finding its body
    # and reading the text. Either leaves an element stale: look again, until WAIT.
    redrawn = WebDriverWait(browser, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    redrawn.until(opened)
    redrawn.until(expected_conditions.frame_to_be_available_and_switch_to_it((By.ID, "messagecontframe")))
    redrawn.until(lambda d: body in d.find_element(By.TAG_NAME, "body").text)
    browser.switch_to.default_content()
    screenshot(browser, "message")


def test_send_a_20mb_attachment_to_the_other_pair(browser: WebDriver, tmp_path: Path) -> None:
    sender = sorted(ACCOUNTS)[0]
    recipient = on_other_pairs(sender)
    attachment = tmp_path / "twenty-megabytes.bin"
    attachment.write_bytes(secrets.token_bytes(20_000_000))
    assert attachment.stat().st_size <= WEBMAIL["attachment_size_limit_bytes"]
    subject = f"from webmail {uuid.uuid4().hex}"

    assert log_in(browser, sender, PASSWORDS[sender])
    browser.get(f"{URL}?_task=mail&_action=compose&_to={recipient}@{WEBMAIL['mail_domain']}")
    WebDriverWait(browser, WAIT).until(expected_conditions.element_to_be_clickable((By.ID, "compose-subject")))
    browser.find_element(By.ID, "compose-subject").send_keys(subject)
    browser.find_element(By.ID, "composebody").send_keys("twenty megabytes, across the pairs")
    upload = browser.find_element(By.CSS_SELECTOR, "input[type=file][name='_attachments[]']")
    # Refused: one byte more than the estate's attachment limit (its message would not fit the hubs').
    too_big = tmp_path / "too-big.bin"
    with too_big.open("wb") as sparse:
        sparse.truncate(WEBMAIL["attachment_size_limit_bytes"] + 1)
    upload.send_keys(str(too_big))
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#messagestack .error, #messagestack .warning"))
    assert not browser.find_elements(By.XPATH, f"//ul[@id='attachment-list']/li[contains(., '{too_big.name}')]")
    # Accepted: 20 MB.
    upload.send_keys(str(attachment))
    WebDriverWait(browser, 300).until(
        lambda d: (
            d.find_elements(By.XPATH, f"//ul[@id='attachment-list']/li[contains(., '{attachment.name}')]")
            and not d.find_elements(By.CSS_SELECTOR, "#attachment-list li.uploading")
        )
    )
    screenshot(browser, "compose")
    browser.find_element(By.CSS_SELECTOR, "button.send").click()
    WebDriverWait(browser, 300).until(lambda d: "_action=compose" not in d.current_url)

    received = fetch_by_subject(recipient, subject, timeout=180)
    parts = [part for part in received.walk() if part.get_filename() == attachment.name]
    assert len(parts) == 1
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert hashlib.sha256(payload).hexdigest() == hashlib.sha256(attachment.read_bytes()).hexdigest()
    assert received["From"].endswith(f"{sender}@{WEBMAIL['mail_domain']}>") or received["From"] == (
        f"{sender}@{WEBMAIL['mail_domain']}"
    )
