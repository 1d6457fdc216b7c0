"""Behaviour of the mail hub (the mta role), observed over real SMTP.

Most clients are smtplib on the controller, which reaches the hub from the network's gateway
address: an Internet host, neither a relay host nor listed in the DNSBL. Clients that must
come from another address (a relay host, a listed host) run inside the peers. Mail is proven
delivered by finding it in the peers' sinks (/var/lib/mail-sink/<sink>/<recipient>/), or for the
outside domain at the lab's Internet-side mail exchanger.

Expected values come from the rendered estate (estate/mta.yml, what a deploy is given) and the
scenario's inventory (molecule.yml: fixtures, the vault's throwaway values), read through
Ansible, so the tests and the scenario cannot drift apart. One test per behaviour; every refusal is
checked next to an acceptance in the same test, so no test passes against a dead server.
"""

from __future__ import annotations

import contextlib
import email.message
import email.utils
import functools
import json
import os
import re
import shlex
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import testinfra
import testinfra.utils.ansible_runner

# The lab CA, which `hermesctl lab up` made and signed the hub's certificate with.
CA = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".lab" / "pki" / "ca.crt"
MOLECULE = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
RENDERED = testinfra.utils.ansible_runner.AnsibleRunner(str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rendered"))
HUB = "mta-hub"
testinfra_hosts = [f"podman://{HUB}"]

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SPAMMY = "hermes-test-spammy-marker"


# Scenario facts -------------------------------------------------------------------------


@functools.cache
def _vars() -> dict[str, Any]:
    """The hub's variables: the scenario's, then the rendered estate's (as Ansible ranks them)."""
    return {**MOLECULE.get_variables(HUB), **RENDERED.get_variables(HUB)}


def _address(name: str) -> str:
    return str(_vars()["hermes_hosts"][name]["address"])


def _hub() -> str:
    return _address(HUB)


def _domain() -> str:
    return str(_vars()["hermes_domains"]["mail"])


def _outside() -> str:
    return str(_vars()["scenario_outside_domain"])


def _password(user: str) -> str:
    return str(_vars()["vault_hermes_user_passwords"][user])


def _policy(name: str) -> Any:
    """A field of the hub's role facts (hermes_mta)."""
    return _vars()["hermes_mta"][name]


def _port(name: str) -> int:
    return int(_policy("ports")[name]["port"])


def _store_of(user: str) -> str:
    """The peer holding the live member of the user's store pair."""
    pair = _vars()["hermes_placement"][user]
    return str(_vars()["hermes_store_pairs"][pair]["live"])


def _peer(name: str) -> Any:
    return testinfra.get_host(f"podman://{name}")


# SMTP helpers ---------------------------------------------------------------------------


def _tls(minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    """Verifies the hub's certificate against the scenario's CA (and its name: the address)."""
    context = ssl.create_default_context(cafile=str(CA))
    context.minimum_version = minimum
    return context


def _connect(port: int | None = None, *, starttls: bool = False) -> smtplib.SMTP:
    port = port or _port("smtp")
    client = smtplib.SMTP(_hub(), port, local_hostname=f"client.{_outside()}", timeout=60)
    client.ehlo()
    if starttls:
        client.starttls(context=_tls())
        client.ehlo()
    return client


def _connect_tls_on_connect() -> smtplib.SMTP_SSL:
    client = smtplib.SMTP_SSL(_hub(), _port("smtps"), local_hostname=f"client.{_outside()}", timeout=60, context=_tls())
    client.ehlo()
    return client


def _message(token: str, sender: str, recipients: list[str], body: str = "", attachment: bytes | None = None) -> bytes:
    """A well-formed message (Date, Message-ID: nothing for SpamAssassin to hold against it)."""
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"hermes mta test {token}"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = f"<{token}@client.{_outside()}>"
    message.set_content(body or f"Test message {token}.\nNothing to see here.\n")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="file.bin")
    return message.as_bytes()


def _token() -> str:
    return uuid.uuid4().hex


def _rcpt(client: smtplib.SMTP, address: str) -> tuple[int, str]:
    """RCPT TO exactly as given (smtplib's rcpt() would rewrite quoted and routed addresses)."""
    code, text = client.docmd(f"RCPT TO:<{address}>")
    return code, text.decode()


def _send(client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> None:
    refused = client.sendmail(sender, recipients, data)
    assert not refused, refused


def _peer_script(peer: str, script: str) -> str:
    return str(_peer(peer).check_output(f"python3 -c {shlex.quote(script)}")).strip()


def _from_peer(peer: str, recipient: str, data: bytes | None = None) -> dict[str, Any]:
    """One SMTP transaction to the hub's port 25 from inside a peer (its own address)."""
    script = f"""
import json, smtplib
result = {{}}
client = smtplib.SMTP({_hub()!r}, 25, local_hostname={peer + "." + _outside()!r}, timeout=60)
client.ehlo()
result["mail"] = client.mail({"postmaster@" + _outside()!r})[0]
code, text = client.rcpt({recipient!r})
result["rcpt"] = [code, text.decode()]
data = {data!r}
if code == 250 and data is not None:
    result["data"] = client.data(data)[0]
client.quit()
print(json.dumps(result))
"""
    return dict(json.loads(_peer_script(peer, script)))


# Sinks and the queue --------------------------------------------------------------------


def _arrived(peer: str, sink: str, recipient: str, token: str, timeout: float = 30) -> str:
    """The stored message containing token, waiting for it; fails after timeout."""
    host = _peer(peer)
    folder = f"/var/lib/mail-sink/{sink}/{recipient.lower()}"
    deadline = time.monotonic() + timeout
    while True:
        found = host.run(f"grep -rl --include='*.eml' -F {shlex.quote(token)} {folder}")
        if found.rc == 0 and found.stdout.strip():
            return str(host.file(found.stdout.split()[0]).content_string)
        if time.monotonic() > deadline:
            pytest.fail(f"{token} never reached {sink} for {recipient} on {peer}\n{_mainlog()}")
        time.sleep(0.5)


def _outside_copies(token: str, timeout: float = 30, copies: int = 1) -> list[email.message.Message]:
    """The copies of the message containing token as the outside domain's MX (the lab's
    Internet side) stored them, one per recipient with its Envelope-to: and Return-Path:
    headers, waiting for ``copies`` of them; fails after timeout."""
    outside = testinfra.get_host("podman://internet-mx")
    deadline = time.monotonic() + timeout
    while len(found := outside.run(f"grep -rlF {shlex.quote(token)} /var/mail/internet").stdout.split()) < copies:
        if time.monotonic() > deadline:
            pytest.fail(f"{token} reached the outside MX {len(found)} times, not {copies}\n{_mainlog()}")
        time.sleep(0.5)
    return [email.message_from_string(str(outside.file(path).content_string)) for path in sorted(found)]


def _arrived_outside(token: str, timeout: float = 30, copies: int = 1) -> str:
    """The text of the copies :func:`_outside_copies` waits for, one after the other."""
    return "".join(copy.as_string() for copy in _outside_copies(token, timeout, copies))


def _not_arrived(peer: str, sink: str, recipient: str, token: str) -> bool:
    return bool(_peer(peer).run(f"grep -rlF {shlex.quote(token)} /var/lib/mail-sink/{sink}/{recipient.lower()}").rc != 0)


def _mainlog(lines: int = 40) -> str:
    return str(_peer(HUB).run(f"tail -n {lines} /var/log/exim4/mainlog").stdout)


def _exim_pid(host: Any) -> str:
    return str(host.check_output("systemctl show --property=MainPID --value exim4.service"))


def _forget_rates(host: Any) -> None:
    """Start from a clean slate: the rates live in Exim's hints database."""
    host.check_output("rm -f /var/spool/exim4/db/ratelimit /var/spool/exim4/db/ratelimit.lockfile")


# Tests ----------------------------------------------------------------------------------


def test_daemon_is_the_units_and_uses_the_rendered_configuration(host: Any) -> None:
    pid = _exim_pid(host)
    assert pid != "0", host.run("journalctl --no-pager -n 30 -u exim4").stdout
    # The only Exim daemon (children of init) is the one systemd tracks.
    daemons = host.check_output("pgrep --parent 1 --exact --full '/usr/sbin/exim4 -bd.*'").split()
    assert daemons == [pid]
    assert "Configuration file is /etc/exim4/exim4.conf" in host.check_output("exim4 -bV")
    # The configuration in use is the rendered one: the model's limit, over SMTP.
    client = _connect()
    assert client.esmtp_features["size"] == str(_policy("message_size_limit_bytes"))
    client.quit()
    # A reload re-executes the same daemon (Exim's SIGHUP), which keeps every port.
    host.check_output("systemctl reload exim4.service")
    assert _exim_pid(host) == pid
    for name in ("smtp", "smtps", "submission"):
        assert host.socket(f"tcp://0.0.0.0:{_port(name)}").is_listening, name


def test_local_users_delivered_to_their_store_pair_by_lmtp(host: Any) -> None:
    token = _token()
    users = ["alice", "bob"]
    stores = {user: _store_of(user) for user in users}
    assert len(set(stores.values())) == 2, "the scenario needs users on two pairs"
    recipients = [f"{user}@{_domain()}" for user in users]
    client = _connect()
    _send(client, f"sender@{_outside()}", recipients, _message(token, f"sender@{_outside()}", recipients))
    client.quit()
    for user, recipient in zip(users, recipients, strict=True):
        text = _arrived(stores[user], "lmtp-2003", recipient, token)
        # Received by the hub (not, say, sent to the sink directly).
        assert f"by {_vars()['hermes_hosts'][HUB]['fqdn']} with esmtp" in text, text[:1500]
        other = next(store for store in set(stores.values()) if store != stores[user])
        assert _not_arrived(other, "lmtp-2003", recipient, token), f"{recipient} also reached {other}"
    # Exim's own routing probe names the router and the pair's live address.
    probe = host.check_output(f"exim4 -bt bob@{_domain()}")
    assert "router = store" in probe and f"host {_address(stores['bob'])}" in probe, probe


def test_every_message_on_a_busy_connection_is_delivered_at_once(host: Any) -> None:
    """Messages after the 10th on one connection are delivered like the first, not left for
    the next queue run (Exim's default, smtp_accept_queue_per_connection)."""
    user = "alice"
    store, recipient = _store_of(user), f"{user}@{_domain()}"
    held_back = "grep -c 'no immediate delivery' /var/log/exim4/mainlog || true"
    before = int(host.check_output(held_back))
    tokens = [_token() for _ in range(15)]
    client = _connect()
    for token in tokens:
        _send(client, f"sender@{_outside()}", [recipient], _message(token, f"sender@{_outside()}", [recipient]))
    client.quit()
    for token in tokens:
        _arrived(store, "lmtp-2003", recipient, token)
    assert int(host.check_output(held_back)) == before, _mainlog()


def test_mailbox_map_change_needs_no_restart(host: Any) -> None:
    """Moving a user is a new lookup file, swapped by rename; the daemon is not touched."""
    pid = _exim_pid(host)
    user = "carol"
    pairs = _vars()["hermes_store_pairs"]
    elsewhere = next(p for p in sorted(pairs) if p != _vars()["hermes_placement"][user])
    before, after = _store_of(user), str(pairs[elsewhere]["live"])
    assert before != after
    mailboxes = "/etc/exim4/hermes/mailbox-pairs"
    moved = f"{user}: {elsewhere}"
    host.check_output(
        f"cp -p {mailboxes} {mailboxes}.orig && sed 's/^{user}: .*/{moved}/' {mailboxes}.orig > {mailboxes}.new"
        f" && chown --reference={mailboxes} {mailboxes}.new && chmod --reference={mailboxes} {mailboxes}.new"
        f" && mv {mailboxes}.new {mailboxes}"
    )
    try:
        token = _token()
        recipient = f"{user}@{_domain()}"
        client = _connect()
        _send(client, f"sender@{_outside()}", [recipient], _message(token, f"sender@{_outside()}", [recipient]))
        client.quit()
        _arrived(after, "lmtp-2003", recipient, token)
        assert _not_arrived(before, "lmtp-2003", recipient, token)
        assert _exim_pid(host) == pid
    finally:
        host.check_output(f"mv {mailboxes}.orig {mailboxes}")
    assert f"host {_address(before)}" in host.check_output(f"exim4 -bt {user}@{_domain()}")


def test_managed_domain_aliases_and_lists(host: Any) -> None:
    token = _token()
    sender = f"sender@{_outside()}"
    # Mixed case in the local part; one alias to two users on two pairs; one to a list.
    recipients = ["Tony.Finch@ucs.test", "mail-support@ucs.test", "unix-support@ucs.test", "announce@lists.hermes.test"]
    client = _connect()
    _send(client, sender, recipients, _message(token, sender, recipients))
    # The domain's long form is the domain: the same alias, to the same user.
    long_form, alias = _token(), ["tony.finch@computing-service.test"]
    _send(client, sender, alias, _message(long_form, sender, alias))
    client.quit()
    _arrived(_store_of("alice"), "lmtp-2003", f"alice@{_domain()}", long_form)
    _arrived(_store_of("alice"), "lmtp-2003", f"alice@{_domain()}", token)
    _arrived(_store_of("bob"), "lmtp-2003", f"bob@{_domain()}", token)
    lists_host = RENDERED.get_hosts("lists")[0]
    _arrived(lists_host, "lmtp-8024", "cs-unix-support@lists.hermes.test", token)
    _arrived(lists_host, "lmtp-8024", "announce@lists.hermes.test", token)


def test_role_addresses_answer_in_every_domain(host: Any) -> None:
    """postmaster@ and abuse@ (RFC 5321 §4.5.1, RFC 2142) of the mail, managed, forwarding and lists domains
    reach the estate's targets (not Mailman); a near miss is refused."""
    roles: dict[str, list[str]] = _policy("role_addresses")
    domains = [_domain(), *_policy("managed_domains"), *_policy("forwarding_domains"), _policy("lists_domain")]
    sender = f"sender@{_outside()}"
    for domain in domains:
        for role in ("postmaster", "abuse"):
            [target] = roles[role]  # the scenario gives each role one user
            client = _connect()
            client.mail(sender)
            assert _rcpt(client, f"{role}x@{domain}")[0] == 550, domain
            client.rset()
            token = _token()
            _send(client, sender, [f"{role}@{domain}"], _message(token, sender, [f"{role}@{domain}"]))
            client.quit()
            _arrived(_store_of(target), "lmtp-2003", f"{target}@{_domain()}", token)


def test_only_lists_are_accepted_in_the_lists_domain(host: Any) -> None:
    """The lists of the estate and Mailman's addresses of each go to Mailman whole; any other
    address of the lists' domain is refused at RCPT, not accepted and bounced later."""
    domain = _policy("lists_domain")
    [name, *_] = _policy("lists")
    client = _connect()
    assert client.mail(f"sender@{_outside()}")[0] == 250
    for local in (name, f"{name}-request", f"{name}-owner", f"{name}-bounces+someone=outside.test"):
        assert _rcpt(client, f"{local}@{domain}")[0] == 250, local
    for local in (f"no-{name}", f"{name}-requests", f"{name}x-owner"):
        code, text = _rcpt(client, f"{local}@{domain}")
        assert code == 550, (local, code, text)
    client.rset()
    token = _token()
    recipient = f"{name}-request@{domain}"
    _send(client, f"sender@{_outside()}", [recipient], _message(token, f"sender@{_outside()}", [recipient]))
    client.quit()
    # Mailman is given the whole local part, suffix included.
    _arrived(RENDERED.get_hosts("lists")[0], "lmtp-8024", recipient, token)


def test_unknown_recipients_refused_at_rcpt(host: Any) -> None:
    client = _connect()
    assert client.mail(f"sender@{_outside()}")[0] == 250
    assert _rcpt(client, f"alice@{_domain()}")[0] == 250  # control
    for address in (f"nobody@{_domain()}", "nobody@ucs.test"):
        code, text = _rcpt(client, address)
        assert code == 550, (address, code, text)
    client.quit()


def test_a_forwarding_domains_addresses_go_where_their_people_chose(host: Any) -> None:
    """@cam: an address goes where its person chose, to a department's server say; an account
    that chose nothing to itself; a shared account, or a name that is neither an account nor
    in the table, has no address there (refused at RCPT)."""
    [(domain, table)] = _policy("forwarding_domains").items()
    shared = set(_policy("shared_accounts"))
    [away] = table
    home = next(user for user in sorted(_vars()["hermes_placement"]) if user not in table and user not in shared)
    sender = f"sender@{_outside()}"
    client = _connect()
    assert client.mail(sender)[0] == 250
    for local in (*shared, f"nobody-{_token()[:8]}"):
        code, text = _rcpt(client, f"{local}@{domain}")
        assert code == 550, (local, code, text)
    client.rset()
    token = _token()
    recipients = [f"{home}@{domain}", f"{away}@{domain}"]
    _send(client, sender, recipients, _message(token, sender, recipients))
    client.quit()
    _arrived(_store_of(home), "lmtp-2003", f"{home}@{_domain()}", token)
    assert f"Envelope-to: {table[away]}" in _arrived_outside(token)


def test_mail_redirected_out_is_sent_from_an_srs_address_whose_bounces_come_back(host: Any) -> None:
    """@cam to where its person chose outside the estate: sent from an SRS address of @cam (the
    target's SPF check sees a sender the hubs may send for), while the same message's copy to
    an address of the target's domain it was sent to directly (the same server) keeps its
    sender. A bounce (null sender) to that SRS address goes back to the original sender; a
    forged one (another sender under the same hash), or mail to it that is not a bounce, is
    refused at RCPT: no relay for backscatter."""
    [(domain, table)] = _policy("forwarding_domains").items()
    [away] = table
    token = _token()
    local = f"sender+{token[:8]}"
    sender, direct = f"{local}@{_outside()}", f"direct-{token[:8]}@{table[away].split('@')[1]}"
    client = _connect()
    _send(client, sender, [f"{away}@{domain}", direct], _message(token, sender, [f"{away}@{domain}", direct]))
    client.quit()
    by_target = {copy["Envelope-to"]: copy["Return-Path"] for copy in _outside_copies(token, copies=2)}
    assert by_target[direct] == f"<{sender}>", by_target
    srs = by_target[table[away]].strip("<>")
    assert re.fullmatch(rf"SRS0=[0-9a-f]{{4}}=[a-z2-7]{{2}}={re.escape(_outside())}={re.escape(local)}@{re.escape(domain)}", srs)

    bounce = _token()
    forged = srs.replace(f"={local}@", "=someone-else@")
    client = _connect()
    assert client.mail("")[0] == 250
    assert _rcpt(client, forged)[0] == 550
    assert _rcpt(client, srs)[0] == 250
    assert client.data(_message(bounce, f"MAILER-DAEMON@{_outside()}", [srs]))[0] == 250
    assert client.mail(f"someone@{_outside()}")[0] == 250
    assert _rcpt(client, srs)[0] == 550
    client.quit()
    [returned] = _outside_copies(bounce)
    assert returned["Envelope-to"] == sender
    assert returned["Return-Path"] == "<>"


def _routed() -> tuple[list[str], str]:
    """The scenario's routed domain, its name and long form (sorted), and their first server's
    name (the Internet side's MX)."""
    routed: dict[str, list[str]] = _policy("routed_domains")
    [[server, *_]] = {tuple(servers) for servers in routed.values()}
    assert server in _vars()["scenario_routed_servers"]
    return sorted(routed), server


def test_a_routed_domains_mail_goes_to_its_own_server_for_the_users_it_has(host: Any) -> None:
    """From the Internet, a departmental domain's mail is relayed to the department's server
    (its postmaster's too: the role addresses are the estate's domains' only); a recipient
    that server refuses is refused at RCPT, not accepted and bounced; a domain that is neither
    the estate's nor routed is not relayed. Its long form is relayed alike."""
    [domain, long_form], server = _routed()
    assert f"host {server} [{_vars()['scenario_outside_mx']}]" in host.check_output(f"exim4 -bt someone@{domain}")
    sender = f"sender@{_outside()}"
    token = _token()
    recipients = [f"user-{token[:8]}@{domain}", f"postmaster@{domain}", f"user-{token[:8]}@{long_form}"]
    client = _connect()
    assert client.mail(sender)[0] == 250
    code, text = _rcpt(client, f"no-such-{token[:8]}@{domain}")
    assert code == 550 and "no such user here" in text, (code, text)
    code, text = _rcpt(client, f"user@not-routed.{_outside()}")
    assert code == 550 and "Relay not permitted" in text, (code, text)
    client.rset()
    _send(client, sender, recipients, _message(token, sender, recipients))
    client.quit()
    delivered = _arrived_outside(token, copies=len(recipients))
    for recipient in recipients:
        assert recipient in delivered, delivered


def test_a_routed_domains_mail_waits_while_its_server_is_down(host: Any) -> None:
    """A backup MX's reason to be: the department's server unreachable, its mail is accepted
    (no callout answer is no refusal), queued, never bounced, and delivered once it is back.
    The hub's own table (not the estate's firewall, inet hermes) refuses its SMTP to the server."""
    [domain, *_], _ = _routed()
    server = _vars()["scenario_outside_mx"]
    recipient = f"user-{_token()[:8]}@{domain}"
    token = _token()
    host.check_output(
        "nft -f - <<'EOF'\n"
        "table inet scenario_down {\n"
        "  chain output {\n"
        "    type filter hook output priority 0;\n"
        f"    ip daddr {server} tcp dport 25 reject with tcp reset\n"
        "  }\n"
        "}\n"
        "EOF"
    )
    try:
        client = _connect()
        _send(client, f"sender@{_outside()}", [recipient], _message(token, f"sender@{_outside()}", [recipient]))
        client.quit()
        deadline = time.monotonic() + 30
        while "==" not in host.run(f"grep -F {shlex.quote(recipient)} /var/log/exim4/mainlog").stdout:
            assert time.monotonic() < deadline, _mainlog()
            time.sleep(0.5)
        assert recipient in host.check_output("exim4 -bp")
        assert testinfra.get_host("podman://internet-mx").run(f"grep -rlF {shlex.quote(token)} /var/mail/internet").rc != 0
    finally:
        host.check_output("nft delete table inet scenario_down")
    # No forced queue run: the server's retry rule tries it again at the next queue run.
    assert recipient in _arrived_outside(token, timeout=60)


@pytest.mark.parametrize(
    "recipient",
    [
        "someone@outside.test",  # plain relay
        "someone%outside.test@hermes.test",  # percent hack
        "outside.test!someone@hermes.test",  # bang path
        '"someone@outside.test"@hermes.test',  # quoted local part
        "@hermes.test:someone@outside.test",  # source route
        "someone%outside.test@ucs.test",  # percent hack through a managed domain
    ],
)
def test_relay_refused_to_outside_clients(host: Any, recipient: str) -> None:
    client = _connect()
    assert client.mail(f"sender@{_outside()}")[0] == 250
    assert _rcpt(client, f"alice@{_domain()}")[0] == 250  # control: a local user, same session
    code, text = _rcpt(client, recipient)
    assert code == 550, (recipient, code, text)
    client.quit()


def test_relay_allowed_for_authenticated_users_and_relay_hosts(host: Any) -> None:
    token = _token()
    recipient = f"someone@{_outside()}"
    client = _connect(_port("submission"), starttls=True)
    client.login("alice", _password("alice"))
    _send(client, f"alice@{_domain()}", [recipient], _message(token, f"alice@{_domain()}", [recipient]))
    client.quit()
    # Delivered "to the Internet": the MX of outside.test, found in DNS.
    _arrived_outside(token)
    # mta-peer-a is in the relay networks: no AUTH needed.
    token = _token()
    result = _from_peer("mta-peer-a", recipient, _message(token, f"postmaster@{_outside()}", [recipient]))
    assert result["rcpt"][0] == 250 and result["data"] == 250, result
    _arrived_outside(token)


def test_message_size_limit(host: Any) -> None:
    limit = int(_policy("message_size_limit_bytes"))
    sender, recipient = f"sender@{_outside()}", f"alice@{_domain()}"
    body = ("x" * 999 + "\n") * ((limit + 1_000_000) // 1000)  # 26 MB for the model's 25 MB
    big = _message(_token(), sender, [recipient], body=body)
    assert len(big) > 26_000_000
    client = _connect()
    # An honest client declares SIZE= and is refused at MAIL.
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail(sender, [recipient], big)
    assert refused.value.smtp_code == 552, refused.value
    # One that does not is refused after DATA.
    client.rset()
    assert client.mail(sender)[0] == 250 and client.rcpt(recipient)[0] == 250
    code, text = client.data(big)
    assert code == 552, text
    # Control: a message of 1 MB passes.
    token = _token()
    _send(client, sender, [recipient], _message(token, sender, [recipient], body=("y" * 999 + "\n") * 1000))
    client.quit()
    _arrived(_store_of("alice"), "lmtp-2003", recipient, token)


@pytest.mark.parametrize("name", ["smtp", "submission"])
def test_auth_offered_only_after_starttls(host: Any, name: str) -> None:
    client = _connect(_port(name))
    assert "starttls" in client.esmtp_features
    assert "auth" not in client.esmtp_features, client.esmtp_features
    with pytest.raises(smtplib.SMTPNotSupportedError):
        client.login("alice", _password("alice"))
    client.starttls(context=_tls())
    client.ehlo()
    assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
    assert client.login("alice", _password("alice"))[0] == 235
    client.quit()
    # A wrong password is refused.
    client = _connect(_port(name), starttls=True)
    with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
        client.login("alice", "not-the-password")
    assert wrong.value.smtp_code == 535
    client.quit()


def test_submission_requires_auth(host: Any) -> None:
    local = f"bob@{_domain()}"
    connects: tuple[Callable[[], smtplib.SMTP], ...] = (
        lambda: _connect(_port("submission"), starttls=True),
        _connect_tls_on_connect,
    )
    for connect in connects:
        client = connect()
        assert client.mail(f"alice@{_domain()}")[0] == 250
        code, text = _rcpt(client, local)
        assert code == 550 and "Authentication required" in text, (code, text)
        client.quit()
        # Control: the same, authenticated.
        client = connect()
        client.login("alice", _password("alice"))
        assert client.mail(f"alice@{_domain()}")[0] == 250
        assert _rcpt(client, local)[0] == 250
        client.quit()


def test_tls_versions(host: Any) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = _tls(version)
        context.maximum_version = version
        client = smtplib.SMTP(_hub(), _port("smtp"), timeout=60)
        client.starttls(context=context)
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
        client.quit()
    # TLS 1.1: the client offers it (OpenSSL's security level lowered), the hub refuses.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cafile=str(CA))
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    client = smtplib.SMTP(_hub(), _port("smtp"), timeout=60)
    with pytest.raises(ssl.SSLError) as refused:
        client.starttls(context=old)
    assert "PROTOCOL_VERSION" in str(refused.value).upper() or "UNSUPPORTED_PROTOCOL" in str(refused.value).upper()
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value).upper(), "the client never offered TLS 1.1"


def test_malware_rejected(host: Any) -> None:
    sender, recipient = f"sender@{_outside()}", f"alice@{_domain()}"
    client = _connect()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail(sender, [recipient], _message(_token(), sender, [recipient], attachment=EICAR))
    assert refused.value.smtp_code == 550 and b"malware" in refused.value.smtp_error, refused.value
    # Control: the same message without the virus, same connection.
    token = _token()
    _send(client, sender, [recipient], _message(token, sender, [recipient], attachment=b"harmless bytes\n"))
    client.quit()
    _arrived(_store_of("alice"), "lmtp-2003", recipient, token)


def test_spam_tagged_and_rejected_per_threshold(host: Any) -> None:
    assert _policy("spam_reject_threshold") is not None, "the scenario must set a reject threshold"
    sender, recipient = f"sender@{_outside()}", f"alice@{_domain()}"
    client = _connect()
    # GTUBE scores 1000: above the reject threshold.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail(sender, [recipient], _message(_token(), sender, [recipient], body=GTUBE + "\n"))
    assert refused.value.smtp_code == 550 and b"spam" in refused.value.smtp_error, refused.value
    # The scenario's local rule scores 8: tagged, delivered.
    spammy, clean = _token(), _token()
    _send(client, sender, [recipient], _message(spammy, sender, [recipient], body=f"Offer {SPAMMY}\n"))
    _send(client, sender, [recipient], _message(clean, sender, [recipient]))
    client.quit()
    store = _store_of("alice")
    tagged = _arrived(store, "lmtp-2003", recipient, spammy)
    assert "X-Spam-Flag: YES" in tagged and "X-Spam-Status: Yes" in tagged, tagged[:2000]
    untagged = _arrived(store, "lmtp-2003", recipient, clean)
    assert "X-Spam-Status: No" in untagged and "X-Spam-Flag" not in untagged, untagged[:2000]


def test_a_spam_verdict_is_the_hubs_and_unscanned_mail_is_marked(host: Any) -> None:
    sender, recipient = f"sender@{_outside()}", f"alice@{_domain()}"
    store = _store_of("alice")
    # An outside sender's own verdict, which no mailbox may show.
    # (Line ends as _message's: smtplib turns each into CRLF.)
    forged = b"X-Spam-Status: No, score=-50.0\nX-Spam-Flag: NO\nX-Spam-Unscanned: forged by the sender\n"
    scan_size = int(host.check_output("sed -n 's/^SPAM_MAX_SCAN_SIZE = //p' /etc/exim4/exim4.conf"))

    def delivered(body: str = "") -> str:
        token = _token()
        client = _connect()
        _send(client, sender, [recipient], forged + _message(token, sender, [recipient], body=body))
        client.quit()
        return _arrived(store, "lmtp-2003", recipient, token)

    scanned = delivered()
    assert "X-Spam-Status: No, score=" in scanned and "score=-50.0" not in scanned, scanned[:2000]
    assert "X-Spam-Flag" not in scanned and "X-Spam-Unscanned" not in scanned, scanned[:2000]
    # Over the scan size: delivered unscanned, and saying so; the sender's verdict still removed.
    big = delivered("Nothing to see here.\n" * (scan_size // 20 + 100))
    assert f"X-Spam-Unscanned: over the scan size of {scan_size} bytes" in big, big[:2000]
    assert "X-Spam-Status" not in big and "forged by the sender" not in big, big[:2000]
    # spamd down: delivered (never refused or lost), marked, and logged.
    host.check_output("systemctl stop spamd.service")
    try:
        unanswered = delivered()
        assert "X-Spam-Unscanned: spamd did not answer" in unanswered, unanswered[:2000]
        assert "X-Spam-Status" not in unanswered and "forged by the sender" not in unanswered, unanswered[:2000]
        assert "not scanned for spam: spamd did not answer" in _mainlog(200)
    finally:
        host.check_output("systemctl start spamd.service")
        host.check_output("timeout 60 sh -c 'until ss -Hltn sport = :783 | grep -q .; do sleep 0.5; done'")


def test_a_line_longer_than_smtp_allows_is_refused_not_bounced() -> None:
    sender, recipient = f"sender@{_outside()}", f"alice@{_domain()}"
    client = _connect()
    # The line is added raw: the email package would encode it shorter.
    # 999 characters: every transport would refuse it, and the message would bounce.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail(sender, [recipient], _message(_token(), sender, [recipient]) + b"x" * 999 + b"\n")
    assert refused.value.smtp_code == 550 and b"a line of 999 characters" in refused.value.smtp_error, refused.value
    # Control: 998, the most SMTP allows, on the same connection, is delivered with it whole.
    token = _token()
    _send(client, sender, [recipient], _message(token, sender, [recipient]) + b"y" * 998 + b"\n")
    client.quit()
    assert "y" * 998 in _arrived(_store_of("alice"), "lmtp-2003", recipient, token)


def test_spamassassin_asks_the_internet_nothing_from_the_lab(host: Any) -> None:
    # The lab target turns SpamAssassin's network tests off (inventory/lab-target.yml): its
    # DNSBL and URIBL lookups would leave the machine. The same scan with the DNSBLs let back
    # in launches lookups, so a scan that launched any would be seen.
    message = (
        "Received: from client.internet.test ([198.51.100.10])\n"
        "\tby hub with esmtp id x; Thu, 03 Dec 2026 14:10:09 +0000\n"
        f"From: sender@{_outside()}\nTo: alice@{_domain()}\nSubject: lookups\nMessage-ID: <lookups@x.test>\n\nhello\n"
    )
    path = "/tmp/hermes-test-lookups.eml"
    host.check_output(f"printf %s {shlex.quote(message)} > {path}")

    def lookups(*config: str) -> int:
        extra = " ".join(shlex.quote(f"--cf={line}") for line in config)
        scan = host.run(f"spamassassin -D dns {extra} -t < {path} 2>&1 >/dev/null")
        debug: str = scan.stdout
        assert scan.rc == 0, debug
        return debug.count("dns: launching rule")

    assert lookups() == 0
    assert lookups("skip_rbl_checks 0", "rbl_timeout 2 1") > 0


def test_dnsbl_listed_client_refused_and_a_refused_querys_answer_is_not_a_listing(host: Any) -> None:
    listed = _vars()["scenario_dnsbl_listed"]
    assert _address("mta-peer-b") in listed
    recipient = f"alice@{_domain()}"
    result = _from_peer("mta-peer-b", recipient)
    code, text = result["rcpt"]
    assert code == 550 and "dnsbl.lab.test" in text, result
    # The controller's outside client (the gateway) is answered as a DNSBL answers a query it
    # refuses, an address in 127.0.0.0/8 that is not among the list's return codes.
    gateway = host.check_output("ip -4 route show default").split()[2]
    answer = host.check_output(f"getent ahostsv4 {'.'.join(reversed(gateway.split('.')))}.dnsbl.lab.test").split()[0]
    dnsbls = _policy("dnsbls")
    assert answer == _vars()["scenario_dnsbl_refused_answer"] and all(answer not in d["listed"] for d in dnsbls)
    # So it is not listed: same recipient, accepted.
    client = _connect()
    assert client.mail(f"sender@{_outside()}")[0] == 250
    assert _rcpt(client, recipient)[0] == 250
    client.quit()


def test_outgoing_rate_limit_per_authenticated_user(host: Any) -> None:
    limit = int(_policy("rate_limit")["messages"])
    _forget_rates(host)

    def attempt(user: str) -> tuple[int, bytes]:
        client = _connect(_port("submission"), starttls=True)
        client.login(user, _password(user))
        code, text = client.mail(f"{user}@{_domain()}")
        client.quit()
        return code, text

    results = [attempt("erin") for _ in range(limit + 3)]
    accepted = [code for code, _text in results if code == 250]
    deferred = [(code, text) for code, text in results if code != 250]
    assert limit - 1 <= len(accepted) <= limit + 1, results
    assert deferred, results
    # Deferred (4xx), not refused: a well-behaved client tries again later.
    assert all(code == 451 and b"rate limit" in text for code, text in deferred), deferred
    # Control: another user is not affected.
    assert attempt("alice")[0] == 250


def test_recipients_of_one_message_are_capped_for_outside_clients_not_for_relay_hosts(host: Any) -> None:
    cap = int(_policy("recipients_per_message"))
    recipient = f"alice@{_domain()}"
    client = _connect()
    assert client.mail(f"sender@{_outside()}")[0] == 250
    codes = [_rcpt(client, recipient)[0] for _ in range(cap + 1)]
    client.quit()
    # The cap-th recipient accepted, the next deferred: the client sends it in another message.
    assert codes[:cap] == [250] * cap and codes[cap] == 452, codes[cap - 2 :]
    # mta-peer-a is a relay host: the same message, no cap.
    relayed = f"""
import smtplib
client = smtplib.SMTP({_hub()!r}, 25, timeout=60)
client.ehlo()
client.mail("postmaster@{_outside()}")
print(sorted({{client.rcpt({recipient!r})[0] for _ in range({cap + 1})}}))
client.quit()
"""
    assert _peer_script("mta-peer-a", relayed) == "[250]"


def test_recipient_rate_limit_per_authenticated_user_whatever_the_case_of_the_login(host: Any) -> None:
    limit = int(_policy("rate_limit")["recipients"])
    _forget_rates(host)

    def recipients(login: str, user: str, count: int) -> list[tuple[int, str]]:
        client = _connect(_port("submission"), starttls=True)
        client.login(login, _password(user))
        assert client.mail(f"{user}@{_domain()}")[0] == 250
        codes = [_rcpt(client, f"r{n}@{_outside()}") for n in range(count)]
        client.quit()
        return codes

    first = recipients("erin", "erin", limit + 3)
    accepted = [code for code, _ in first if code == 250]
    deferred = [(code, text) for code, text in first if code != 250]
    assert limit - 1 <= len(accepted) <= limit + 1 and first[0][0] == 250, first
    # Deferred (4xx), never refused: the client tries the rest later.
    assert deferred and all(400 <= code < 500 and "rate limit" in text for code, text in deferred), deferred
    # Logging in as ERIN is erin (the directory compares names without case): the same count.
    again = recipients("ERIN", "erin", 1)
    assert 400 <= again[0][0] < 500 and "rate limit" in again[0][1], again
    # Control: another user is not affected.
    assert recipients("alice", "alice", 1)[0][0] == 250


def test_connections_from_one_outside_host_are_limited_not_from_relay_hosts(host: Any) -> None:
    limit = int(_policy("connections_per_client"))
    clients = []
    try:
        for _ in range(limit):
            client = smtplib.SMTP(timeout=30)
            assert client.connect(_hub(), 25)[0] == 220
            clients.append(client)
        extra = smtplib.SMTP(timeout=30)
        code, text = extra.connect(_hub(), 25)
        extra.close()
        assert code == 421 and b"too many" in text.lower(), (code, text)
    finally:
        for client in clients:
            client.close()
    # A relay host (mta-peer-a) holds more at once.
    relayed = f"""
import socket
sockets = [socket.create_connection(({_hub()!r}, 25), timeout=30) for _ in range({limit + 2})]
print(sorted({{s.makefile("rb").readline()[:3].decode() for s in sockets}}))
"""
    assert _peer_script("mta-peer-a", relayed) == "['220']"


def test_a_relay_hosts_messages_are_rate_limited(host: Any) -> None:
    limit = int(_policy("relay_host_rate_limit")["messages"])
    _forget_rates(host)
    sender = f"postmaster@{_outside()}"
    relayed = f"""
import smtplib
codes = []
for _ in range({limit + 3}):
    client = smtplib.SMTP({_hub()!r}, 25, timeout=60)
    client.ehlo()
    codes.append(client.mail({sender!r})[0])
    client.quit()
print(" ".join(map(str, codes)))
"""
    try:
        # mta-peer-a is the scenario's relay host.
        codes = [int(code) for code in _peer_script("mta-peer-a", relayed).split()]
        accepted = [code for code in codes if code == 250]
        assert limit - 1 <= len(accepted) <= limit + 1 and codes[0] == 250, codes
        # Deferred, never refused: the relay host's mail waits in its own queue.
        assert all(code == 451 for code in codes if code != 250) and len(accepted) < len(codes), codes
        # Control: an outside client is not held to the relay host's count.
        client = _connect()
        assert client.mail(sender)[0] == 250
        client.quit()
    finally:
        _forget_rates(host)


def test_a_host_whose_logins_keep_failing_is_cut_off(host: Any) -> None:
    failures = int(_policy("failed_logins")["failures"])
    _forget_rates(host)

    def login(password: str) -> int:
        """One AUTH PLAIN (smtplib's login() would try a second mechanism, a second failure)."""
        client = _connect(_port("submission"), starttls=True)
        client.user, client.password = "alice", password
        try:
            return int(client.auth("PLAIN", client.auth_plain)[0])
        except smtplib.SMTPAuthenticationError as error:
            return int(error.smtp_code)
        except smtplib.SMTPServerDisconnected:
            return 421
        finally:
            with contextlib.suppress(smtplib.SMTPServerDisconnected):
                client.quit()

    try:
        assert login(_password("alice")) == 235
        answers = [login("not-alices-password") for _ in range(failures + 3)]
        # Each failure answered 535 until more than the allowance have failed; then the host is
        # refused at AUTH, whatever the password.
        answered = next((i for i, answer in enumerate(answers) if answer != 535), len(answers))
        assert failures <= answered <= failures + 1, answers
        assert login(_password("alice")) != 235
        assert "AUTH refused" in _mainlog(50)
    finally:
        _forget_rates(host)
    # Forgotten (as after the period), the right password works again.
    assert login(_password("alice")) == 235


def test_store_down_mail_queued_then_delivered(host: Any) -> None:
    """Nothing is lost while a store is down: queued, retried, delivered when it returns."""
    user = "carol"
    store, recipient = _store_of(user), f"{user}@{_domain()}"
    peer = _peer(store)
    peer.check_output("systemctl stop mail-sink@lmtp-2003.service")
    try:
        token = _token()
        client = _connect()
        _send(client, f"sender@{_outside()}", [recipient], _message(token, f"sender@{_outside()}", [recipient]))
        client.quit()
        # Deferred and queued (never bounced).
        deadline = time.monotonic() + 30
        while recipient not in host.run("exim4 -bp").stdout:
            assert time.monotonic() < deadline, _mainlog()
            time.sleep(0.5)
        assert int(host.check_output("exim4 -bpc")) >= 1
        assert "defer" in host.check_output(f"grep -F {shlex.quote(recipient)} /var/log/exim4/mainlog | tail -n 3")
        assert _not_arrived(store, "lmtp-2003", recipient, token)
    finally:
        peer.check_output("systemctl start mail-sink@lmtp-2003.service")
    # No forced queue run: the queue runner retries within a queue interval or two.
    _arrived(store, "lmtp-2003", recipient, token, timeout=60)
    deadline = time.monotonic() + 30
    while recipient in host.run("exim4 -bp").stdout:
        assert time.monotonic() < deadline, host.run("exim4 -bp").stdout
        time.sleep(0.5)
