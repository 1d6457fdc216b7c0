"""The IMAP/POP proxy in front of two store pairs, with real clients from another host.

imaplib and poplib run on the controller (the network's gateway, not the proxy's host), so the
proxy's TLS rules apply to them in full. Which store a login reached is proven by a message put
straight into the user's mailbox on the store the estate places them on, and found through the
proxy. Expected values come from the rendered estate and the scenario's vault.
"""

from __future__ import annotations

import imaplib
import poplib
import time
import uuid
from contextlib import suppress
from typing import Any

import pytest
from accesslib import address, facts, host, imap_session, tls

HUB = "ac-hub"
VARS: dict[str, Any] = facts(HUB)
PASSWORDS: dict[str, str] = VARS["vault_hermes_user_passwords"]
PLACEMENT: dict[str, str] = VARS["hermes_placement"]
PAIRS: dict[str, Any] = VARS["hermes_store_pairs"]
PORTS = {listener["name"]: listener["port"] for listener in VARS["hermes_proxy"]["listeners"]}


def live_store(user: str) -> str:
    return str(PAIRS[PLACEMENT[user]]["live"])


def imap(name: str, user: str, password: str) -> imaplib.IMAP4_SSL:
    """A logged-in IMAP session on the estate's imaps port (imaplib's own context manager logs it out)."""
    return imap_session(name, PORTS["imaps"], user, password)


def put(user: str) -> str:
    """A message with a fresh token, put straight into the user's INBOX on their live store."""
    token = uuid.uuid4().hex
    with imap(live_store(user), user, PASSWORDS[user]) as store:
        message = f"Subject: {token}\r\nFrom: test@access.test\r\n\r\nproxy scenario\r\n".encode()
        status, _ = store.append("INBOX", "", imaplib.Time2Internaldate(time.time()), message)
        assert status == "OK"
    return token


def found_through_the_proxy(user: str, token: str) -> bool:
    with imap(HUB, user, PASSWORDS[user]) as connection:
        connection.select("INBOX", readonly=True)
        status, data = connection.search(None, "SUBJECT", token)
        return status == "OK" and bool(data[0].split())


def test_each_user_reaches_the_live_store_of_their_pair() -> None:
    users = sorted(u for u in PLACEMENT if u in PASSWORDS)
    # The scenario covers both pairs and a user moved by an override.
    assert {PLACEMENT[u] for u in users} == set(PAIRS)
    assert PLACEMENT["alice"] != PLACEMENT["bob"]  # the same letter range; the override moved alice
    for user in users:
        assert found_through_the_proxy(user, put(user)), user
    # The control: a token on one user's store is not in another user's mailbox on another pair.
    token = put("bob")
    assert PLACEMENT["bob"] != PLACEMENT["nick"]
    assert not found_through_the_proxy("nick", token)


def test_pop_logins_reach_the_live_store_too() -> None:
    for user in ("alice", "bob"):
        token = put(user)
        client = poplib.POP3_SSL(address(HUB), PORTS["pop3s"], context=tls(), timeout=30)
        try:
            client.user(user)
            client.pass_(PASSWORDS[user])
            count, _ = client.stat()
            subjects = b"".join(b"".join(client.top(i, 0)[1]) for i in range(1, count + 1))
            assert token.encode() in subjects, user
        finally:
            client.quit()


def test_a_shared_account_reads_by_imap_never_by_pop() -> None:
    """POP would let one person's client take the mail off the server for everyone (seed 001:
    IMAP suits shared accounts, POP does not): refused whatever the password, while the same
    account logs in by IMAP and a personal account by POP through the same proxy."""
    imap_only: list[str] = VARS["hermes_proxy"]["imap_only"]
    [shared] = imap_only
    personal = next(user for user in sorted(PLACEMENT) if user not in imap_only and user in PASSWORDS)
    with imap(HUB, shared, PASSWORDS[shared]):
        pass
    for user, refused in ((shared, True), (personal, False)):
        client = poplib.POP3_SSL(address(HUB), PORTS["pop3s"], context=tls(), timeout=30)
        try:
            client.user(user)
            if refused:
                with pytest.raises(poplib.error_proto, match="Login disabled"):
                    client.pass_(PASSWORDS[user])
            else:
                assert client.pass_(PASSWORDS[user]).startswith(b"+OK")
        finally:
            with suppress(OSError, poplib.error_proto):
                client.quit()


def test_plaintext_login_is_refused_before_starttls() -> None:
    user = "bob"
    connection = imaplib.IMAP4(address(HUB), PORTS["imap"], timeout=30)
    try:
        assert "LOGINDISABLED" in connection.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            connection.login(user, PASSWORDS[user])
        # The positive control, on the same connection: after STARTTLS the same login works.
        connection.starttls(ssl_context=tls())
        assert connection.login(user, PASSWORDS[user])[0] == "OK"
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            connection.logout()
    pop = poplib.POP3(address(HUB), PORTS["pop3"], timeout=30)
    try:
        with pytest.raises(poplib.error_proto):
            pop.user(user)
            pop.pass_(PASSWORDS[user])
        pop.stls(context=tls())
        pop.user(user)
        assert pop.pass_(PASSWORDS[user]).startswith(b"+OK")
    finally:
        with suppress(OSError, poplib.error_proto):
            pop.quit()


def test_wrong_passwords_and_strangers_are_refused() -> None:
    with imap(HUB, "bob", PASSWORDS["bob"]):
        pass
    for user, password in (("bob", PASSWORDS["bob"] + "x"), ("mallory", PASSWORDS["mallory"])):
        with pytest.raises(imaplib.IMAP4.error), imap(HUB, user, password):
            pass


def test_the_store_logs_the_clients_address() -> None:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 2))
    with imap(HUB, "nick", PASSWORDS["nick"]):
        pass
    client = VARS["hermes_networks"]["service"]["gateway"]
    # Whichever of the store's IMAP services the proxy logs in on (imap: STARTTLS, imaps).
    log = host(live_store("nick")).check_output(f"journalctl --no-pager --utc --since='{since}' -t cyrus/imap -t cyrus/imaps")
    assert f'"x-originating-ip" "{client}"' in log, log
    assert address(HUB) in log


def test_a_new_map_is_used_by_the_next_login_without_a_restart() -> None:
    proxy = host(HUB)
    pid = proxy.check_output("systemctl show --property=MainPID --value dovecot.service")
    path = "/etc/dovecot/hermes/imap.map"
    other = next(p for p in PAIRS if p != PLACEMENT["bob"])
    elsewhere = f"host={PAIRS[other]['live']}.{VARS['hermes_domains']['hosts']} hostip={address(PAIRS[other]['live'])}"
    token = put("bob")
    proxy.check_output("cp -p %s %s.orig", path, path)
    try:
        time.sleep(1.1)  # Dovecot re-reads a map whose mtime or size changed, at most once a second.
        proxy.check_output("sed -i -e %s %s", f"/^bob:/ s/host=[^ ]* hostip=[^ ]*/{elsewhere}/", path)
        # bob now lands on the other pair's store, where his mailbox is not.
        assert not found_through_the_proxy_safely("bob", token)
    finally:
        time.sleep(1.1)
        proxy.check_output("mv %s.orig %s && touch %s", path, path, path)
    assert found_through_the_proxy("bob", token)
    assert proxy.check_output("systemctl show --property=MainPID --value dovecot.service") == pid


def found_through_the_proxy_safely(user: str, token: str) -> bool:
    """As found_through_the_proxy, but a mailbox that is not there counts as not found."""
    try:
        return found_through_the_proxy(user, token)
    except imaplib.IMAP4.error:
        return False


def test_sessions_on_a_store_can_be_kicked() -> None:
    def listed() -> bool:
        return any(line.split()[:1] == ["nick"] for line in host(HUB).check_output("doveadm proxy list").splitlines())

    connection = imap(HUB, "nick", PASSWORDS["nick"])
    try:
        assert connection.noop()[0] == "OK"
        assert listed()
        # The kick itself, not the count doveadm prints: with two login processes the count
        # it sums is sometimes 0 for a session it did kick.
        host(HUB).check_output("doveadm proxy kick nick")
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            for _ in range(10):
                connection.noop()
                time.sleep(0.2)
        assert not listed()
    finally:
        with suppress(OSError):
            connection.shutdown()
