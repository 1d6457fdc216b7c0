"""The deployed lab estate, used as its users and the world use it.

A stranger on the lab's Internet side (internet-client) finds the estate's mail exchangers
through the Internet's resolver and sends to a user on each store pair through each of them;
each message is then in its mailbox exactly once, over IMAP and POP through each proxy and in
webmail in a real browser, and on the pair's replica and on the backup. A member's post to a
list reaches every member; a user's mail to the Internet reaches the outside MX; a stranger
cannot relay. `hermesctl check` reports the estate green, and red when an MX is down.

Expected values come from the estate file (inventory/estates/lab.yml) and the lab vault.
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import dns.resolver
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from hermes.check import probe_users
from hermes.lab import internet
from hermes.lab.browser import chromium, log_in
from hermes.lab.image import podman_env
from hermes.lab.vault import read_lab_vault
from hermes.listening import LMTP
from hermes.loader import load_estate
from hermes.paths import LAB_STATE, PROJECT_ROOT
from hermes.render.dns import mail_exchangers
from hermes.render.roles import precheck_facts
from hermes.store.check import check_pairs, pair_specs
from hermes.store.runner import PodmanRunner

LOADED = load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
ESTATE = LOADED.estate
STATE = LAB_STATE / "lab"
CA = LAB_STATE / "pki" / "ca.crt"
MAIL = ESTATE.domains.mail
HEADER = "X-Hermes-Test"
WAIT = 90.0


def podman(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["podman", *args], env=podman_env(), input=stdin, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def outside(script: str) -> str:
    """Python run on the Internet side's client; its standard output."""
    return podman("exec", "--interactive", internet.CLIENT[0], "python3", "-", stdin=script)


def address(host: str) -> str:
    return str(LOADED.addresses[host])


def tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CA))


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    vault = read_lab_vault(STATE / "vault.yml", STATE / "vault-password")
    return dict(vault["vault_hermes_user_passwords"])


@pytest.fixture(scope="module")
def users(passwords: dict[str, str]) -> dict[str, str]:
    """pair -> a user placed on it."""
    return dict(probe_users(LOADED, passwords).by_pair)


@pytest.fixture(scope="module", autouse=True)
def client_trusts_the_estate_ca() -> None:
    """The stranger's client trusts the estate's CA, as a user's machine trusts a public one."""
    podman("cp", str(CA), f"{internet.CLIENT[0]}:/tmp/estate-ca.crt")


def token() -> str:
    return secrets.token_hex(8)


def in_inbox(proxy: str, user: str, password: str, tag: str) -> int:
    """How many messages carrying ``tag`` the user's INBOX holds, over IMAP through ``proxy``."""
    with imaplib.IMAP4_SSL(address(proxy), ESTATE.policies.ports.imaps.port, ssl_context=tls(), timeout=30) as imap:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "HEADER", HEADER, tag)
        return len(data[0].split())


def wait_for(count: int, check: Callable[[], int], *, what: str) -> None:
    """Until ``check()`` gives ``count`` (mail takes a moment to arrive), at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    got = check()
    while got != count and time.monotonic() < deadline:
        time.sleep(1)
        got = check()
    assert got == count, f"{what}: {got}, not {count}"


# -- DNS, as the Internet sees it -------------------------------------------------------------


def test_the_internet_finds_the_estates_mail_exchangers() -> None:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [internet.MX[1]]
    exchangers = {f"{mx['host']}." for mx in mail_exchangers(ESTATE)}
    assert {r.exchange.to_text() for r in resolver.resolve(MAIL, "MX")} == exchangers
    # The Internet's own domain answers from the same resolver: it is not the estate's.
    assert {r.exchange.to_text() for r in resolver.resolve(internet.DOMAIN, "MX")} == {f"mx.{internet.DOMAIN}."}
    # The client resolves each exchanger to the hub's address.
    for mx in ESTATE.services.mx.hosts:
        name = f"{mx}.{ESTATE.domains.hosts}"
        assert outside(f"import socket; print(socket.gethostbyname('{name}'))").strip() == address(mx)


# -- Mail in from a stranger ------------------------------------------------------------------


SEND = """
import smtplib, ssl
from email.message import EmailMessage
message = EmailMessage()
message["From"], message["To"], message["Subject"] = {sender!r}, {recipient!r}, {subject!r}
message[{header!r}] = {tag!r}
message.set_content("hello from the Internet\\n")
with smtplib.SMTP({host!r}, {port}, local_hostname="client.internet.test", timeout=30) as smtp:
    smtp.starttls(context=ssl.create_default_context(cafile="/tmp/estate-ca.crt"))
    {login}
    try:
        smtp.send_message(message, from_addr={envelope!r})
        print("accepted")
    except smtplib.SMTPRecipientsRefused as refused:
        print("refused", *[code for code, _ in refused.recipients.values()])
"""


def send_from_outside(
    host: str,
    recipient: str,
    tag: str,
    *,
    port: int = 25,
    login: tuple[str, str] | None = None,
    sender: str = "stranger@internet.test",
) -> str:
    """Send one message from the Internet side's client to ``host`` (a name it resolves)."""
    script = SEND.format(
        sender=sender,
        recipient=recipient,
        subject=f"test {tag}",
        header=HEADER,
        tag=tag,
        host=host,
        port=port,
        login=f"smtp.login({login[0]!r}, {login[1]!r})" if login else "pass",
        envelope=sender,
    )
    return outside(script).strip()


@pytest.fixture(scope="module")
def delivered(users: dict[str, str], passwords: dict[str, str]) -> Iterator[dict[str, list[str]]]:
    """From the stranger, through each MX by its name, one message to the user on each pair:
    user -> the tags sent to them. Deleted afterwards, so a lab tested again stays as it was."""
    sent: dict[str, list[str]] = {}
    for mx in sorted(ESTATE.services.mx.hosts):
        for user in users.values():
            tag = token()
            assert send_from_outside(f"{mx}.{ESTATE.domains.hosts}", f"{user}@{MAIL}", tag) == "accepted"
            sent.setdefault(user, []).append(tag)
    yield sent
    for user, tags in sent.items():
        with imaplib.IMAP4_SSL(
            address(sorted(ESTATE.services.proxy.hosts)[0]), ESTATE.policies.ports.imaps.port, ssl_context=tls()
        ) as imap:
            imap.login(user, passwords[user])
            imap.select("INBOX")
            for tag in tags:
                _, data = imap.search(None, "HEADER", HEADER, tag)
                for number in data[0].split():
                    imap.store(number.decode(), "+FLAGS.SILENT", r"(\Deleted)")
            imap.expunge()


def test_mail_from_outside_reaches_each_pairs_user_once_through_every_proxy(
    delivered: dict[str, list[str]], passwords: dict[str, str]
) -> None:
    assert len(delivered) == len(ESTATE.services.store_pairs)
    for user, tags in delivered.items():
        for tag in tags:
            for proxy in sorted(ESTATE.services.proxy.hosts):
                wait_for(1, partial(in_inbox, proxy, user, passwords[user], tag), what=f"{tag} in {user}'s INBOX via {proxy}")


def test_pop_through_every_proxy_lists_it(delivered: dict[str, list[str]], passwords: dict[str, str]) -> None:
    for user, tags in delivered.items():
        for proxy in sorted(ESTATE.services.proxy.hosts):
            pop = poplib.POP3_SSL(address(proxy), ESTATE.policies.ports.pop3s.port, context=tls(), timeout=30)
            try:
                pop.user(user)
                pop.pass_(passwords[user])
                count, _ = pop.stat()
                headers = b"\n".join(line for n in range(1, count + 1) for line in pop.top(n, 0)[1]).decode()
            finally:
                pop.quit()
            assert all(headers.count(f"{HEADER}: {tag}") == 1 for tag in tags), (user, proxy)


def _copies(host: str, tag: str) -> int:
    """Message files carrying ``tag`` in the host's mail spool (on its data volume)."""
    mount = next(h.storage.mount for h in ESTATE.hosts if h.name == host and h.storage is not None)
    found = subprocess.run(
        ["podman", "exec", host, "grep", "-rlF", "--include=*.", f"{HEADER}: {tag}", mount],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return len(found.stdout.split())


def test_it_is_replicated_to_the_replica_and_the_backup_and_nowhere_else(delivered: dict[str, list[str]]) -> None:
    specs = pair_specs(LOADED)
    deadline = time.monotonic() + WAIT
    while not all(s.in_sync for s in check_pairs(specs, PodmanRunner())) and time.monotonic() < deadline:
        time.sleep(2)
    pair_of = {p.name: p for p in ESTATE.services.store_pairs}
    for user, tags in delivered.items():
        pair = pair_of[LOADED.placement[user]]
        holders = {pair.master, pair.replica, pair.backup}
        for host in sorted({h.name for h in ESTATE.hosts if h.storage is not None}):
            expected = 1 if host in holders else 0
            for tag in tags:
                assert _copies(host, tag) == expected, f"{tag} for {user} on {host}"


def _listed(subject: str, driver: WebDriver) -> bool:
    """The message list is the search's result: rows, and each with the subject searched for."""
    rows = driver.find_elements(By.CSS_SELECTOR, "#messagelist tbody tr")
    return bool(rows) and all(subject in row.text for row in rows)


def test_webmail_shows_it_in_a_real_browser(delivered: dict[str, list[str]], passwords: dict[str, str], tmp_path: Path) -> None:
    (webmail,) = ESTATE.services.webmail.hosts
    name = f"webmail.{ESTATE.domains.hosts}"
    user, tags = next(iter(delivered.items()))
    with chromium(tmp_path, CA, {name: address(webmail)}) as driver:
        # The wrong password is refused; the right one opens the mailbox.
        assert not log_in(driver, f"https://{name}/", user, passwords[user] + "x")
        assert log_in(driver, f"https://{name}/", user, passwords[user])
        # Each message, found with the search box as a user finds it, whatever else is there.
        for tag in tags:
            # Roundcube loads the list after the page: a search typed before it is done is lost.
            WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return !rcmail.busy") is True)
            search = driver.find_element(By.CSS_SELECTOR, "#mailsearchform")
            search.clear()
            search.send_keys(tag + Keys.ENTER)
            WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
                partial(_listed, f"test {tag}")
            )
            rows = driver.find_elements(By.CSS_SELECTOR, "#messagelist tbody tr")
            assert [r.text.count(f"test {tag}") for r in rows] == [1], f"{tag} in {user}'s list"


# -- Lists, the outside, relaying -------------------------------------------------------------


def test_a_members_post_reaches_every_member_once(passwords: dict[str, str]) -> None:
    (mailing_list,) = ESTATE.services.lists.lists
    poster = mailing_list.owners[0]
    submission = ESTATE.policies.ports.submission.port
    mx = f"{sorted(ESTATE.services.mx.hosts)[0]}.{ESTATE.domains.hosts}"
    tag = token()
    sent = send_from_outside(
        mx,
        f"{mailing_list.name}@{ESTATE.services.lists.domain}",
        tag,
        port=submission,
        login=(poster, passwords[poster]),
        sender=f"{poster}@{MAIL}",
    )
    assert sent == "accepted"
    proxy = sorted(ESTATE.services.proxy.hosts)[0]
    # Members on both pairs (the estate file says so; the test relies on it).
    assert {LOADED.placement[m] for m in mailing_list.members} == {p.name for p in ESTATE.services.store_pairs}
    for member in mailing_list.members:
        wait_for(1, partial(in_inbox, proxy, member, passwords[member], tag), what=f"the post in {member}'s INBOX")


def _sink(tag: str) -> int:
    found = subprocess.run(
        ["podman", "exec", internet.MX[0], "grep", "-rlF", f"{HEADER}: {tag}", internet.SINK_MAILDIR],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return len(found.stdout.split())


def test_a_users_mail_to_the_internet_reaches_the_outside_mx_and_a_stranger_cannot_relay(
    users: dict[str, str], passwords: dict[str, str]
) -> None:
    user = next(iter(users.values()))
    mx = f"{sorted(ESTATE.services.mx.hosts)[-1]}.{ESTATE.domains.hosts}"
    far = f"someone@{internet.DOMAIN}"
    # A stranger, on port 25: refused for the Internet, accepted for a user of the estate.
    refused, accepted = token(), token()
    assert send_from_outside(mx, far, refused) == "refused 550"
    assert send_from_outside(mx, f"{user}@{MAIL}", accepted) == "accepted"
    # The user, authenticated on submission: relayed, and it arrives at the outside MX once.
    relayed = token()
    submission = ESTATE.policies.ports.submission.port
    sent = send_from_outside(mx, far, relayed, port=submission, login=(user, passwords[user]), sender=f"{user}@{MAIL}")
    assert sent == "accepted"
    wait_for(1, partial(_sink, relayed), what="the user's message at the outside MX")
    assert _sink(refused) == 0


# -- hermesctl check --------------------------------------------------------------------------


def hermesctl_check() -> tuple[int, dict[str, object]]:
    result = subprocess.run(
        [str(Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin" / "hermesctl"), "check", "--lab", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
    )
    return result.returncode, json.loads(result.stdout)


def _failed(report: dict[str, object]) -> dict[tuple[str, str], str]:
    results = report["results"]
    assert isinstance(results, list)
    return {(r["probe"], r["target"]): r["detail"] for r in results if not r["ok"]}


def test_check_is_green_and_turns_red_when_an_mx_or_its_spam_scanner_is_down() -> None:
    code, report = hermesctl_check()
    assert code == 0 and report["ok"], report
    hubs = sorted(ESTATE.services.mx.hosts)
    down = hubs[-1]
    podman("exec", down, "systemctl", "stop", "exim4")
    try:
        code, report = hermesctl_check()
    finally:
        podman("exec", down, "systemctl", "start", "exim4")
    assert code == 1 and not report["ok"]
    # Nothing went in through it, so there is no verdict of its to read either.
    assert set(_failed(report)) == {("smtp in", down), ("submission", down), ("spam scan", down)} | (
        {("list post", down)} if len(hubs) == 1 else set()
    )
    # A hub whose spamd is down still takes mail (never refused or lost), marked unscanned.
    unscanning = hubs[0]
    podman("exec", unscanning, "systemctl", "stop", "spamd")
    try:
        code, report = hermesctl_check()
    finally:
        podman("exec", unscanning, "systemctl", "start", "spamd")
    assert code == 1 and _failed(report) == {("spam scan", unscanning): "delivered unscanned: spamd did not answer"}
    deadline = time.monotonic() + WAIT
    while (code := hermesctl_check()[0]) != 0 and time.monotonic() < deadline:
        time.sleep(2)  # spamd takes a few seconds to load its rules
    assert code == 0


def test_the_precheck_knows_every_port_the_estate_listens_on() -> None:
    # Every port a host listens on beyond loopback (and SSH, the deploy's own) is one the
    # renderer gave its precheck, which finds each held by the unit it named (the lab's second
    # deploy passed it); and every port the precheck names is listening.
    for host in ESTATE.hosts:
        prechecked = {owner.port for owner in precheck_facts(ESTATE, host.name).ports}
        sockets = [line.split()[3] for line in podman("exec", host.name, "ss", "-Hltn").splitlines()]
        local, port = zip(*(listener.rsplit(":", 1) for listener in sockets), strict=True)
        listening = {int(p) for p in port}
        outside = {int(p) for a, p in zip(local, port, strict=True) if not a.startswith(("127.", "[::1]"))}
        assert prechecked <= listening, (host.name, prechecked - listening)
        assert outside - {22} <= prechecked, (host.name, outside - prechecked)


def test_from_the_internet_only_the_public_services_answer() -> None:
    # The stranger reaches a hub's SMTP and a proxy's IMAP; a store's LMTP, IMAP and SSH, and
    # a hub's SSH, are refused by the hosts' firewalls. The lab machine, the management
    # network, gets SSH and a store's IMAP; a hub gets the store's LMTP.
    hub, proxy = ESTATE.services.mx.hosts[0], ESTATE.services.proxy.hosts[0]
    store = ESTATE.services.store_pairs[0].live
    ports = ESTATE.policies.ports
    probes = [
        (hub, ports.smtp.port),
        (proxy, ports.imaps.port),
        (store, LMTP),
        (store, ports.imaps.port),
        (store, 22),
        (hub, 22),
    ]
    script = f"""
import socket
for host, port in {[(address(h), p) for h, p in probes]!r}:
    try:
        socket.create_connection((host, port), timeout=5).close()
        print("open")
    except ConnectionRefusedError:
        print("refused")
"""
    assert outside(script).split() == ["open", "open", "refused", "refused", "refused", "refused"]
    for port in (22, ports.imaps.port):
        socket.create_connection((address(store), port), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address(store), LMTP), timeout=5)
    greeting = f"import socket; print(socket.create_connection(({address(store)!r}, {LMTP}), 5).recv(100))"
    assert "220 " in podman("exec", hub, "python3", "-c", greeting)
