"""Mailman 3 behind the hub: posts, -owner, -request and bounces, end to end.

The controller (the network's gateway address) is an outside client: it posts through the
hub's SMTP port with smtplib and reads each person's INBOX on the live store of their pair with
imaplib, logging in with the vault's password, as they would. Mailman's own state (rosters,
bounce scores) is read through its REST API on the lists host. Expected values come from the
rendered estate (hermes_lists, hermes_mta, the placement) and the scenario's vault, never from
what the system answered; every refusal is checked next to an acceptance in the same test.
"""

from __future__ import annotations

import email.message
import email.utils
import functools
import imaplib
import json
import shlex
import smtplib
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from accesslib import PROJECT, RENDERED, address, facts, host, imap_session

OUTSIDE = "outside.test"  # the controller's HELO domain, a name nobody has to resolve
ROLE = PROJECT / "roles" / "mailman"


@functools.cache
def role_value(file: str, name: str) -> Any:
    """A value the mailman role fixes: its published LMTP port, its REST listener, its admin."""
    return yaml.safe_load((ROLE / file).read_text())[name]


def lmtp_port() -> int:
    return int(role_value("vars/main/published.yml", "mailman_lmtp_port"))


def rest_port() -> int:
    return int(role_value("vars/main/role.yml", "_mailman_rest_port"))


# Scenario facts ---------------------------------------------------------------------------


def lists_host() -> str:
    [name] = RENDERED.get_hosts("lists")
    return str(name)


def hub() -> str:
    [name] = RENDERED.get_hosts("mx")
    return str(name)


def lists_facts() -> dict[str, Any]:
    return dict(facts(lists_host())["hermes_lists"])


def mail_domain() -> str:
    return str(facts(hub())["hermes_domains"]["mail"])


def the_list() -> dict[str, Any]:
    """The list the tests post to: one with two members or more, run by owners who are not members."""
    return next(m for m in lists_facts()["lists"] if len(m["members"]) >= 2 and not set(m["owners"]) & set(m["members"]))


def list_address(suffix: str = "", mailing_list: dict[str, Any] | None = None) -> str:
    name = (mailing_list or the_list())["name"]
    return f"{name}{suffix}@{lists_facts()['domain']}"


def user_of(mailbox: str) -> str:
    """The account behind an address of the accounts' domain."""
    user, _, domain = mailbox.partition("@")
    assert domain == mail_domain(), mailbox
    return user


def everyone() -> list[str]:
    """Every account of the estate (each is placed on a pair), as an address."""
    return sorted(f"{user}@{mail_domain()}" for user in facts(hub())["hermes_placement"])


# Mail in and out --------------------------------------------------------------------------


def token() -> str:
    return uuid.uuid4().hex


def message(sender: str, to: str, subject: str, body: str, message_id: str) -> bytes:
    """A well-formed message (Date, Message-ID: nothing for SpamAssassin to hold against it)."""
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = f"<{message_id}@client.{OUTSIDE}>"
    msg.set_content(body)
    return msg.as_bytes()


def connect() -> smtplib.SMTP:
    port = int(facts(hub())["hermes_mta"]["ports"]["smtp"]["port"])
    client = smtplib.SMTP(address(hub()), port, local_hostname=f"client.{OUTSIDE}", timeout=60)
    client.ehlo()
    return client


def send(sender: str, recipient: str, data: bytes) -> None:
    client = connect()
    try:
        refused = client.sendmail(sender, [recipient], data)
        assert not refused, refused
    finally:
        client.quit()


def imap(user: str) -> imaplib.IMAP4_SSL:
    """A logged-in session on the live store of the user's pair (imaplib's context manager logs out)."""
    store = facts(hub())["hermes_store_pairs"][facts(hub())["hermes_placement"][user]]["live"]
    port = next(li["port"] for li in facts(store)["hermes_cyrus"]["listeners"] if li["name"] == "imaps")
    return imap_session(store, port, user, facts(hub())["vault_hermes_user_passwords"][user])


def found(mailbox: str, criterion: str, text: str) -> int:
    """How many messages in the INBOX of ``mailbox`` match (IMAP SEARCH <criterion> <text>)."""
    with imap(user_of(mailbox)) as connection:
        connection.select("INBOX", readonly=True)
        status, data = connection.search(None, criterion, text)
        assert status == "OK", data
        return len(data[0].split())


def eventually(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f}s: {what}")
        time.sleep(2)


def settled(mailboxes: list[str], criterion: str, text: str) -> dict[str, int]:
    """Once every one of ``mailboxes`` has the message, wait a little more for any copy still
    on its way, then count the copies in everyone's INBOX."""
    eventually(lambda: all(found(m, criterion, text) for m in mailboxes), f"{text} in {mailboxes}")
    time.sleep(10)
    return {m: found(m, criterion, text) for m in everyone()}


# Mailman's REST API, asked on the lists host -----------------------------------------------


def rest(path: str) -> Any:
    """GET a REST resource as the vault's administrator, from the lists host (it listens on loopback)."""
    script = (
        "import base64, json, sys, urllib.request\n"
        "user, password, url = json.load(sys.stdin)\n"
        "request = urllib.request.Request(url)\n"
        "request.add_header('Authorization', 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode())\n"
        "print(urllib.request.urlopen(request, timeout=30).read().decode())\n"
    )
    argument = json.dumps(
        [
            role_value("defaults/main.yml", "mailman_admin_user"),
            facts(lists_host())["vault_hermes_mailman_admin_password"],
            f"http://127.0.0.1:{rest_port()}/3.1{path}",
        ]
    )
    result = host(lists_host()).run(f"echo {shlex.quote(argument)} | python3 -c {shlex.quote(script)}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def roster(mailing_list: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    list_id = f"{mailing_list['name']}.{lists_facts()['domain']}"
    return {entry["email"]: entry for entry in rest(f"/lists/{list_id}/roster/{role}").get("entries", [])}


# Tests ------------------------------------------------------------------------------------


def test_mailman_runs_as_list_and_lmtp_listens_only_on_the_service_address() -> None:
    lists = host(lists_host())
    # Each process's systemd unit and user (procps reads the unit from the process's cgroup).
    processes = [line.split() for line in lists.check_output("ps -e -o unit=,user=").splitlines() if line.strip()]
    mailman = [user for unit, user in processes if unit == "mailman3.service"]
    assert len(mailman) >= 10 and set(mailman) == {"list"}, processes  # the master and its runners
    assert any(user == "root" for unit, user in processes if unit != "mailman3.service"), processes  # the control

    service = address(lists_host())
    listening = lists.check_output("ss -Hltn").split("\n")
    local = {line.split()[3] for line in listening if line.strip()}
    assert {a for a in local if a.endswith(f":{lmtp_port()}")} == {f"{service}:{lmtp_port()}"}, local
    assert {a for a in local if a.endswith(f":{rest_port()}")} == {f"127.0.0.1:{rest_port()}"}, local

    # From the hub, LMTP answers on the service address. From anywhere else (the controller) the
    # lists host's firewall refuses it, and the REST API answers no one but loopback.
    greeting = (
        "python3 -c 'import socket, sys; print(socket.create_connection((sys.argv[1], int(sys.argv[2])), 5).recv(200))' {} {}"
    )
    assert "220 " in host(hub()).check_output(greeting.format(service, lmtp_port())), "no LMTP greeting"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((service, lmtp_port()), timeout=10).close()
    with pytest.raises(OSError):
        socket.create_connection((service, rest_port()), timeout=10).close()
    # On the host: loopback has no LMTP listener.
    probe = "python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)' {} " + str(lmtp_port())
    assert lists.run(probe.format(service)).rc == 0
    assert lists.run(probe.format("127.0.0.1")).rc != 0


def test_the_hub_relays_for_the_lists_host_and_no_other() -> None:
    """Exim's host-checking mode on the hub: the lists host may send anywhere without AUTH,
    another host of the same network may not. No relay network covers either (the estate)."""
    assert facts(hub())["hermes_mta"]["relay_networks"] == []
    other = next(name for name in facts(hub())["hermes_hosts"] if name not in (lists_host(), hub()))
    session = f"EHLO client.{OUTSIDE}\r\nMAIL FROM:<{list_address('-bounces')}>\r\nRCPT TO:<someone@{OUTSIDE}>\r\nQUIT\r\n"

    def rcpt_reply(client: str) -> str:
        output = host(hub()).check_output(f"printf {shlex.quote(session)} | exim4 -bh {client} 2>/dev/null")
        return str([line for line in output.splitlines() if line[:4] in ("250 ", "550 ")][-1])

    assert rcpt_reply(address(lists_host())) == "250 Accepted"
    assert rcpt_reply(address(other)).startswith("550 Relay not permitted")


def test_rosters_are_the_estates() -> None:
    for mailing_list in lists_facts()["lists"]:
        for role in ("owner", "member"):
            expected = {a.lower() for a in mailing_list[f"{role}s"]}
            assert set(roster(mailing_list, role)) == expected, (mailing_list["name"], role)


def test_a_post_reaches_every_member_once_and_nobody_else() -> None:
    members = the_list()["members"]
    poster, tag = members[0], token()
    send(poster, list_address(), message(poster, list_address(), f"hermes lists test {tag}", "A post.\n", token()))
    copies = settled(members, "SUBJECT", tag)
    assert {m: copies[m] for m in members} == dict.fromkeys(members, 1), copies
    # The owners are not members: the post is not theirs, nor anyone else's.
    assert not any(copies[m] for m in copies if m not in members), copies


def test_the_owner_address_reaches_the_owners_only() -> None:
    owners, members = the_list()["owners"], the_list()["members"]
    sender, tag = members[0], token()
    subject = f"hermes lists owner test {tag}"
    send(sender, list_address("-owner"), message(sender, list_address("-owner"), subject, "For the owners.\n", token()))
    copies = settled(owners, "SUBJECT", tag)
    assert {o: copies[o] for o in owners} == dict.fromkeys(owners, 1), copies
    assert not any(copies[m] for m in members), copies


def test_the_request_address_answers() -> None:
    sender, reference = the_list()["members"][0], token()
    # A command in the Subject; Mailman's answer quotes the original Message-ID.
    send(sender, list_address("-request"), message(sender, list_address("-request"), "help", "help\n", reference))
    eventually(lambda: found(sender, "BODY", reference) > 0, f"an answer to {sender}")
    with imap(user_of(sender)) as connection:
        connection.select("INBOX", readonly=True)
        _, data = connection.search(None, "BODY", reference)
        _, fetched = connection.fetch(data[0].split()[-1], "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    part = fetched[0]
    assert isinstance(part, tuple), fetched
    headers = part[1].decode()
    assert "The results of your email commands" in headers and list_address("-bounces") in headers, headers
    # Nobody else was answered.
    other = the_list()["members"][1]
    assert found(other, "BODY", reference) == 0


def test_an_address_of_the_lists_domain_that_is_no_list_is_refused_at_rcpt() -> None:
    domain, sender = lists_facts()["domain"], the_list()["members"][0]
    names = {m["name"] for m in lists_facts()["lists"]}
    missing = next(f"nosuchlist{i}" for i in range(100) if f"nosuchlist{i}" not in names)
    client = connect()
    try:
        assert client.mail(sender)[0] == 250
        assert client.rcpt(list_address())[0] == 250  # the control, in the same session
        code, text = client.rcpt(f"{missing}@{domain}")
        assert code == 550, (code, text)
        code, text = client.rcpt(f"{missing}-request@{domain}")
        assert code == 550, (code, text)
    finally:
        client.quit()


def test_a_bounce_for_a_member_is_registered_against_that_member() -> None:
    bounced, other = the_list()["members"][1], the_list()["members"][0]
    before = roster(the_list(), "member")
    reference, boundary = token(), token()
    # An RFC 3464 report, as a receiving MTA sends it to the list's bounce address (null sender).
    dsn = (
        f"From: Mail Delivery System <mailer-daemon@client.{OUTSIDE}>\r\n"
        f"To: {list_address('-bounces')}\r\n"
        "Subject: Mail delivery failed\r\n"
        f"Date: {email.utils.formatdate(localtime=True)}\r\n"
        f"Message-ID: <{reference}@client.{OUTSIDE}>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "A message to a member of the list could not be delivered.\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; client.{OUTSIDE}\r\n\r\n"
        f"Final-Recipient: rfc822; {bounced}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such mailbox\r\n"
        f"--{boundary}--\r\n"
    )
    send("", list_address("-bounces"), dsn.encode())

    def registered() -> bool:
        now = roster(the_list(), "member")[bounced.lower()]
        then = before[bounced.lower()]
        return bool(now["bounce_score"] >= 1 and now.get("last_bounce_received") != then.get("last_bounce_received"))

    eventually(registered, f"a bounce registered for {bounced}")
    # The other member's record is untouched.
    after = roster(the_list(), "member")[other.lower()]
    assert after.get("last_bounce_received") == before[other.lower()].get("last_bounce_received"), after
