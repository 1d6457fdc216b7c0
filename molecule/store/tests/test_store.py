"""The message store on a pair (master live, replica spare), its backup server and an MX.

One test per behaviour of the issue, in the order they build on each other (pytest runs
them in file order). Every refusal is paired with an acceptance in the same test, so a
service that is simply down cannot make a negative test pass. Commands go straight
through testinfra's podman backend; IMAP and POP go from the controller over TLS,
verified against the scenario's CA; LMTP goes from inside the MX (the only host allowed).
"""

from __future__ import annotations

import imaplib
import json
import poplib
import re
import shlex
import smtplib
import socket
import ssl
import statistics
import threading
import time
from typing import Any

import pytest
from storelib import (
    ADMIN,
    ADMIN_PASSWORDS,
    BACKUP,
    CYRUS,
    CYRUS_BIN,
    DEFAULTS,
    EPHEMERAL,
    ESTATE,
    LMTP_PORT,
    MANAGED,
    MASTER,
    MX,
    PASSWORDS,
    RENDERED,
    REPLICA,
    REPLICATION_PASSWORDS,
    USERS,
    address,
    admin,
    deliver,
    facts,
    grant_admin_read,
    host,
    imap,
    journal,
    lmtp_send,
    mailboxes_of,
    messages,
    ok,
    search_message_id,
    snapshots,
    tls_context,
    user,
    wait_in_sync,
)

RECEIVERS = (REPLICA, BACKUP)
LDAPS_PORT = 636
SSH_PORT = 22


def _listening(name: str) -> set[int]:
    """TCP ports open beyond loopback (loopback-only listeners such as exim's are not services),
    but for the directory's LDAPS where the host also holds the directory (another role's) and
    sshd, which every host runs for its administrators and Ansible."""
    ports = set()
    for line in host(name).check_output("ss -ltnH").splitlines():
        bind, _, port = line.split()[3].rpartition(":")
        if not bind.startswith("127.") and bind != "[::1]":
            ports.add(int(port))
    if name in RENDERED.get_hosts("directory"):
        ports.discard(LDAPS_PORT)
    ports.discard(SSH_PORT)
    return ports


def _cyrus_conf_services(name: str) -> tuple[list[str], list[str]]:
    text = host(name).file("/etc/cyrus.conf").content_string
    services = re.search(r"SERVICES \{(.*?)\n\}", text, re.S).group(1)  # type: ignore[union-attr]
    daemon = re.search(r"DAEMON \{(.*?)\n\}", text, re.S)
    names = [line.split()[0] for line in services.splitlines() if line.strip() and not line.strip().startswith("#")]
    daemons = [] if daemon is None else [line.split()[0] for line in daemon.group(1).splitlines() if line.strip()]
    return names, daemons


# Configuration per role --------------------------------------------------------------------


def test_services_follow_each_hosts_role() -> None:
    for name in (MASTER, REPLICA, BACKUP):
        unit = host(name).run("systemctl is-active cyrus-imapd.service")
        assert unit.stdout.strip() == "active", journal(name)
    # The live master: user services, LMTP, and one rolling sync_client per channel.
    assert _listening(MASTER) == {143, 993, 110, 995, 2003}
    assert _cyrus_conf_services(MASTER) == (
        ["imap", "imaps", "pop3", "pop3s", "lmtp", "lmtpunix", "imapunix"],
        ["syncreplica", "syncbackup"],
    )
    clients = host(MASTER).check_output("pgrep -a -x sync_client")
    assert "sync_client -r -n replica" in clients and "sync_client -r -n backup" in clients
    # The receivers: IMAP for admins and sync_server; no POP, no LMTP, no sync_client.
    for name in RECEIVERS:
        assert _listening(name) == {143, 993, 2005}, name
        assert _cyrus_conf_services(name) == (["imap", "imaps", "syncserver", "imapunix"], []), name
        assert host(name).run("pgrep -x sync_client").rc == 1, name
    # Quota warnings are mailed by the live member only.
    timer = "cyrus-quota-warn.timer"
    assert host(MASTER).run(f"systemctl is-enabled {timer}").stdout.strip() == "enabled"
    assert host(MASTER).run(f"systemctl is-active {timer}").stdout.strip() == "active"
    for name in RECEIVERS:
        assert host(name).run(f"systemctl is-active {timer}").stdout.strip() == "inactive", name


def test_a_member_serves_its_pairs_sessions_at_once_and_the_next_waits() -> None:
    """Each client listener serves the sessions the renderer sized for the pair (Cyrus
    maxchild), the spare as many as the live member, so a switchover changes no limit; one more
    connection is not refused but waits, unanswered, until a session ends."""
    limit = int(CYRUS["client_sessions"])
    assert facts(REPLICA)["hermes_cyrus"]["client_sessions"] == limit
    sessions: list[socket.socket] = []
    try:
        for _ in range(limit):
            sessions.append(socket.create_connection((address(REPLICA), 143), timeout=10))
            assert sessions[-1].recv(200).startswith(b"* OK"), len(sessions)
        waiting = socket.create_connection((address(REPLICA), 143), timeout=3)
        sessions.append(waiting)
        with pytest.raises(TimeoutError):
            waiting.recv(200)
        sessions.pop(0).close()
        waiting.settimeout(15)
        assert waiting.recv(200).startswith(b"* OK")
    finally:
        for session in sessions:
            session.close()


def test_configuration_is_checked_and_private() -> None:
    for name in (MASTER, REPLICA, BACKUP):
        conf = host(name).file("/etc/imapd.conf")
        assert MANAGED in conf.content_string
        assert (conf.user, conf.group, conf.mode) == ("root", "mail", 0o640), name
        # Cyrus itself knows every key (a misspelt one would be silently ignored).
        assert host(name).check_output(f"{CYRUS_BIN}/cyr_info conf-lint") == "", name
        sasldb = host(name).file("/etc/cyrus-store/service-accounts.sasldb2")
        assert (sasldb.user, sasldb.mode) == ("cyrus", 0o600)
        key = host(name).file("/etc/cyrus-store/tls/server.key")
        assert (key.user, key.group, key.mode) == ("root", "mail", 0o640)
    master = host(MASTER).file("/etc/imapd.conf").content_string
    # The pair's own replication account, on both channels; the administrator alone is an IMAP
    # admin; the receivers' sync_server takes the replication accounts of the pairs they serve.
    password = REPLICATION_PASSWORDS["s1"]
    for channel, target in (("replica", REPLICA), ("backup", BACKUP)):
        assert f"{channel}_sync_host: {address(target)}\n" in master
        assert f"{channel}_sync_authname: sync-s1\n" in master
        assert f"{channel}_sync_password: {password}\n" in master
    assert "sync_log_channels: replica backup\n" in master
    assert "sasl_pwcheck_method: auxprop saslauthd\n" in master
    assert "\nadmins: cyrus\n" in master and "syncserver_admins" not in master
    for name, senders in ((REPLICA, "sync-s1"), (BACKUP, "sync-s1 sync-s2")):
        conf = host(name).file("/etc/imapd.conf").content_string
        assert "sync_log: no\n" in conf and "_sync_password" not in conf
        assert "sasl_pwcheck_method: auxprop\n" in conf
        assert "\nadmins: cyrus\n" in conf and f"\nsyncserver_admins: {senders}\n" in conf


def test_partitions_are_on_the_data_volume() -> None:
    expected = {
        MASTER: ("/srv/mail", {"default": "spool", "spool2": "spool2"}),
        REPLICA: ("/srv/mail", {"default": "spool", "spool2": "spool2"}),
        # The backup server holds both pairs it backs up (s2 adds "archive").
        BACKUP: ("/srv/backup", {"default": "spool", "spool2": "spool2", "archive": "archive"}),
    }
    for name, (mount, partitions) in expected.items():
        conf = host(name).file("/etc/imapd.conf").content_string
        listed = dict(re.findall(r"^partition-(\w+): (\S+)$", conf, re.M))
        assert listed == {p: f"{mount}/{path}" for p, path in partitions.items()}, name
        for path in listed.values():
            directory = host(name).file(path)
            assert directory.is_directory and directory.user == "cyrus" and directory.mode == 0o750
    # Mail really lands there.
    path = host(MASTER).check_output(f"runuser -u cyrus -- {CYRUS_BIN}/mbpath user.alice")
    assert path.startswith("/srv/mail/spool/"), path


def test_cyrus_starts_only_with_its_data_volume() -> None:
    for name in (MASTER, REPLICA, BACKUP):
        mount = facts(name)["hermes_cyrus"]["data_mount"]
        unit = host(name).check_output("systemctl show cyrus-imapd.service --property=RequiresMountsFor,ExecStartPre")
        required = next(line for line in unit.splitlines() if line.startswith("RequiresMountsFor="))
        assert mount in required.split("=", 1)[1].split(), unit
        assert f"argv[]=/usr/bin/mountpoint --quiet {mount} " in unit, unit
        # What the start check tells apart: the volume, and a directory of the root disk.
        assert host(name).run(f"mountpoint --quiet {mount}").rc == 0, name
        assert host(name).run("mountpoint --quiet /var/lib/cyrus").rc != 0, name


# Provisioning --------------------------------------------------------------------------------


def test_mailboxes_are_created_on_the_master_and_replicated() -> None:
    status = wait_in_sync()
    taken = snapshots()
    inboxes = {name: {m for m in snap.mailboxes if m.count(".") == 1} for name, snap in taken.items()}
    assert inboxes[MASTER] == {f"user.{u}" for u in USERS}
    # dave lives on pair s2: not provisioned here.
    assert "user.dave" not in inboxes[MASTER] and "dave" not in USERS
    # Created once, on the master: the receivers hold the same mailboxes (same unique ids).
    for name in RECEIVERS:
        for mailbox in inboxes[MASTER]:
            assert taken[name].mailboxes[mailbox].unique_id == taken[MASTER].mailboxes[mailbox].unique_id
    assert status.in_sync


def test_quotas_come_from_the_model_in_kib() -> None:
    default = CYRUS["quota_default_bytes"] // 1024
    overrides = CYRUS["quota_overrides"]
    expected = {u: overrides.get(u, CYRUS["quota_default_bytes"]) // 1024 for u in USERS}
    assert expected["alice"] == default and expected["bob"] == 100_000_000 // 1024
    for name in (MASTER, REPLICA, BACKUP):
        with admin(name) as connection:
            for login, kib in expected.items():
                quota = ok(connection.getquota(f"user.{login}"))[0].decode()
                limit = int(re.search(r"STORAGE \d+ (\d+)", quota).group(1))  # type: ignore[union-attr]
                assert limit == kib, (name, login, quota)


# Who may talk to whom --------------------------------------------------------------------------


def test_lmtp_only_from_the_mx() -> None:
    accepted = lmtp_send(MX, "alice", tag="from-mx")
    assert accepted["error"] is None and accepted["results"][0]["code"] == 250, accepted
    # A peer that is not an MX (the backup server) is refused by the master's firewall (behind
    # it, Cyrus's hosts.allow would cut the connection before the greeting).
    refused = lmtp_send(BACKUP, "alice", tag="from-backup")
    assert refused["results"] == [] and "ConnectionRefusedError" in refused["error"], refused
    # So is the controller, though it is the management network: SSH and IMAP only.
    with pytest.raises(ConnectionRefusedError):
        smtplib.LMTP(address(MASTER), LMTP_PORT, timeout=10)
    # The message from the MX arrived; nothing from the others.
    with user(MASTER, "alice") as connection:
        ok(connection.select("INBOX", readonly=True))
        assert search_message_id(connection, "<from-mx-1@store-test>")
        assert not search_message_id(connection, "<from-backup-1@store-test>")


def test_each_pair_and_backup_server_has_its_own_administrator_and_replication_no_imap_rights() -> None:
    # The backup server's administrator has a password of its own: the pair's opens nothing there.
    with admin(BACKUP) as connection:
        assert ok(connection.list('""', "user.*")) != [None]
    with pytest.raises(imaplib.IMAP4.error), imap(BACKUP, ADMIN, ADMIN_PASSWORDS["s1"]):
        pass
    # The pair's replication account administers sync_server only: over IMAP on a receiver it
    # sees none of the mailboxes the administrator sees.
    with admin(REPLICA) as connection:
        assert ok(connection.list('""', "user.*")) != [None]
    with imap(REPLICA, "sync-s1", REPLICATION_PASSWORDS["s1"]) as connection:
        assert ok(connection.list('""', "*")) == [None]
    # Another pair's replication account is known only where that pair replicates to.
    with pytest.raises(imaplib.IMAP4.error), imap(REPLICA, "sync-s2", REPLICATION_PASSWORDS["s2"]):
        pass
    with imap(BACKUP, "sync-s2", REPLICATION_PASSWORDS["s2"]):
        pass


def _banner(sender: str, target: str, port: int) -> str:
    """What ``target`` says first to a connection from ``sender``: its banner, "closed" (Cyrus's
    hosts.allow hangs up), or "refused" (the firewall)."""
    code = (
        "import socket\n"
        "try:\n"
        f"    s = socket.create_connection(({address(target)!r}, {port}), timeout=5)\n"
        "except ConnectionRefusedError:\n"
        "    print('refused')\n"
        "else:\n"
        "    print(s.recv(200).decode(errors='replace').strip() or 'closed')\n"
    )
    return str(host(sender).check_output(f"python3 -c {shlex.quote(code)}")).strip()


def test_sync_server_only_from_the_pair() -> None:
    port = DEFAULTS["cyrus_store_sync_port"]
    # The master may replicate to the replica and the backup server...
    for name in RECEIVERS:
        assert "* OK" in _banner(MASTER, name, port), name
    # ... the MX may not: the receivers' firewalls refuse it ...
    for name in RECEIVERS:
        assert _banner(MX, name, port) == "refused", name
    # ... nor the spare. The backup server's firewall admits both members of the pair (a
    # switchover changes no firewall); its Cyrus admits only the live one (hosts.allow).
    assert _banner(REPLICA, BACKUP, port) == "closed"
    assert f"refused connection from {address(REPLICA)}" in journal(BACKUP)


def test_imap_and_pop_over_tls_on_the_master() -> None:
    ip = address(MASTER)
    # Implicit TLS, certificate verified against the scenario's CA.
    with user(MASTER, "alice") as connection:
        ok(connection.select("INBOX", readonly=True))
    # STARTTLS: no LOGIN in the clear, then LOGIN once TLS is up.
    plain = imaplib.IMAP4(ip, 143, timeout=30)
    assert "LOGINDISABLED" in plain.capabilities and "STARTTLS" in plain.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        plain.login("alice", PASSWORDS["alice"])
    ok(plain.starttls(ssl_context=tls_context()))
    ok(plain.login("alice", PASSWORDS["alice"]))
    plain.logout()
    # POP3S and POP3 with STLS.
    pop: poplib.POP3 = poplib.POP3_SSL(ip, 995, context=tls_context(), timeout=30)
    pop.user("bob")
    assert pop.pass_(PASSWORDS["bob"]).startswith(b"+OK")
    pop.quit()
    pop = poplib.POP3(ip, 110, timeout=30)
    with pytest.raises(poplib.error_proto):
        pop.user("bob")
        pop.pass_(PASSWORDS["bob"])
    pop.quit()
    pop = poplib.POP3(ip, 110, timeout=30)
    pop.stls(context=tls_context())
    pop.user("bob")
    assert pop.pass_(PASSWORDS["bob"]).startswith(b"+OK")
    pop.quit()
    # Control for the verification: a client that does not trust the CA refuses the server.
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(ip, 993, ssl_context=ssl.create_default_context(), timeout=30)
    # A wrong password is refused (and right ones were accepted above).
    with pytest.raises(imaplib.IMAP4.error), imaplib.IMAP4_SSL(ip, 993, ssl_context=tls_context(), timeout=30) as connection:
        connection.login("alice", PASSWORDS["alice"] + "x")


def test_user_logins_are_refused_on_the_receivers() -> None:
    replica = host(REPLICA)
    # The credentials are good (saslauthd on every member asks the directory)...
    check = replica.run(f"testsaslauthd -u alice -p {PASSWORDS['alice']}")
    assert check.rc == 0, check.stdout
    # ... and a user who has no mailbox anywhere, added to the directory by hand.
    [directory] = RENDERED.get_hosts("directory")
    people = facts(directory)["hermes_directory"]["people"]
    ghost = f"dn: uid=ghost,{people}\nobjectClass: inetOrgPerson\nuid: ghost\ncn: ghost\nsn: ghost\nuserPassword: ghost-pw\n"
    host(directory).check_output("printf %s | ldapadd -Q -Y EXTERNAL -H ldapi:///", ghost)
    try:
        assert replica.run("testsaslauthd -u ghost -p ghost-pw").rc == 0
        for name in RECEIVERS:
            # Control: the admin logs in on the receivers.
            with admin(name) as connection:
                ok(connection.noop())
            for login, password in (("alice", PASSWORDS["alice"]), ("ghost", "ghost-pw")):
                connection = imaplib.IMAP4_SSL(address(name), 993, ssl_context=tls_context(), timeout=30)
                with pytest.raises(imaplib.IMAP4.error, match="Login failed"), connection:
                    connection.login(login, password)
            # No POP at all on a receiver (the master answers, test above).
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address(name), 995), timeout=10)
        # Control: alice logs in on the master.
        with user(MASTER, "alice") as connection:
            ok(connection.noop())
    finally:
        host(directory).run("ldapdelete -Q -Y EXTERNAL -H ldapi:/// %s", f"uid=ghost,{people}")
    # The refused logins created nothing.
    for name in RECEIVERS:
        assert mailboxes_of("ghost", name) == []
    assert "user.ghost" not in snapshots()[REPLICA].mailboxes


# Replication ---------------------------------------------------------------------------------


def _same_everywhere(mailbox: str) -> dict[str, Any]:
    states = {name: messages(name, mailbox) for name in (MASTER, REPLICA, BACKUP)}
    assert states[REPLICA] == states[MASTER], mailbox
    assert states[BACKUP] == states[MASTER], mailbox
    return states[MASTER]


def test_deliveries_reach_replica_and_backup_with_identical_uids_and_flags() -> None:
    for login in ("alice", "bob"):
        grant_admin_read(login)
        deliver(login, count=4, subject="replicated", tag=f"repl-{login}")
    with user(MASTER, "alice") as connection:
        ok(connection.select("INBOX"))
        uids = [search_message_id(connection, f"<repl-alice-{i}@store-test>")[0] for i in (1, 2)]
        ok(connection.uid("STORE", str(uids[0]), "+FLAGS", "(\\Flagged $Important)"))
        ok(connection.uid("STORE", str(uids[1]), "+FLAGS", "(\\Answered)"))
    wait_in_sync()
    alice = _same_everywhere("user.alice")
    flagged = {uid: flags for uid, (flags, _) in alice["messages"].items() if flags}
    assert flagged == {uids[0]: frozenset({"\\Flagged", "$Important"}), uids[1]: frozenset({"\\Answered"})}
    bob = _same_everywhere("user.bob")
    assert len(bob["messages"]) >= 4


def test_folder_operations_flags_and_expunges_reach_the_receivers() -> None:
    with user(MASTER, "alice") as connection:
        for folder in ("INBOX.Projects", "INBOX.Old", "INBOX.Tmp"):
            ok(connection.create(folder))
        ok(connection.rename("INBOX.Old", "INBOX.Archive"))
        ok(connection.select("INBOX"))
        [first, *_] = search_message_id(connection, "<repl-alice-3@store-test>")
        ok(connection.uid("COPY", str(first), "INBOX.Projects"))
        ok(connection.uid("STORE", str(first), "+FLAGS", "(\\Deleted)"))
        ok(connection.expunge())
        ok(connection.delete("INBOX.Tmp"))
    grant_admin_read("alice")
    wait_in_sync()
    expected = mailboxes_of("alice", MASTER)
    assert {"user.alice", "user.alice.Projects", "user.alice.Archive"} <= set(expected)
    assert "user.alice.Old" not in expected and "user.alice.Tmp" not in expected
    assert any(m.startswith("DELETED.user.alice.Tmp.") for m in expected)
    for name in RECEIVERS:
        assert mailboxes_of("alice", name) == expected, name
    inbox = _same_everywhere("user.alice")
    assert first not in inbox["messages"]
    projects = _same_everywhere("user.alice.Projects")
    assert [mid for _, mid in projects["messages"].values()] == ["<repl-alice-3@store-test>"]


# Recovery ------------------------------------------------------------------------------------


def _expire_event(name: str) -> str:
    conf = host(name).file("/etc/cyrus.conf").content_string
    return re.search(r'^\s*expire cmd="([^"]+)"', conf, re.M).group(1)  # type: ignore[union-attr]


def test_an_expunged_message_is_recovered() -> None:
    days = CYRUS["expunge_retention_days"]
    expire = _expire_event(MASTER)
    assert f"-X {days}d" in expire and f"-D {CYRUS['delete_retention_days']}d" in expire
    [message] = deliver("carol", subject="precious", tag="precious")
    wanted = message["message_id"]
    with user(MASTER, "carol") as connection:
        ok(connection.select("INBOX"))
        [uid] = search_message_id(connection, wanted)
        ok(connection.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)"))
        ok(connection.expunge())
        assert search_message_id(connection, wanted) == []
    # The nightly purge, run now: a message expunged seconds ago is within the retention.
    host(MASTER).check_output(f"runuser -u cyrus -- {CYRUS_BIN}/{expire}")
    # The runbook (docs/store.md): list, then restore by UID.
    listed = host(MASTER).check_output(f"runuser -u cyrus -- {CYRUS_BIN}/unexpunge -l user.carol")
    assert f"UID: {uid}\n" in listed + "\n" and '"precious 1"' in listed
    host(MASTER).check_output(f"runuser -u cyrus -- {CYRUS_BIN}/unexpunge -d -u user.carol {uid}")
    with user(MASTER, "carol") as connection:
        ok(connection.select("INBOX", readonly=True))
        restored = search_message_id(connection, wanted)
        assert len(restored) == 1 and restored[0] > uid  # back, under a new UID
    grant_admin_read("carol")
    wait_in_sync()
    inbox = _same_everywhere("user.carol")
    assert [mid for _, mid in inbox["messages"].values()].count(wanted) == 1


def test_a_deleted_folder_is_recovered() -> None:
    with user(MASTER, "carol") as connection:
        ok(connection.create("INBOX.Keep"))
        ok(connection.append("INBOX.Keep", None, None, b"Message-ID: <keep@store-test>\r\nSubject: keep\r\n\r\nkeep me\r\n"))
        ok(connection.delete("INBOX.Keep"))
        assert not ok(connection.list('""', "INBOX.Keep"))[0]
    wait_in_sync()
    [deleted] = [m for m in mailboxes_of("carol", MASTER) if m.startswith("DELETED.user.carol.Keep.")]
    # The runbook: rename it back as the admin.
    with admin(MASTER) as connection:
        ok(connection.rename(deleted, "user.carol.Keep"))
    with user(MASTER, "carol") as connection:
        ok(connection.select("INBOX.Keep", readonly=True))
        assert len(search_message_id(connection, "<keep@store-test>")) == 1
    status = wait_in_sync()
    assert status.in_sync
    taken = snapshots()
    for name in RECEIVERS:
        assert deleted not in taken[name].mailboxes
        assert taken[name].mailboxes["user.carol.Keep"].unique_id == taken[MASTER].mailboxes["user.carol.Keep"].unique_id


# Limits ----------------------------------------------------------------------------------------


def test_message_size_limit_matches_the_mta() -> None:
    limit = CYRUS["message_size_limit_bytes"]
    margin = DEFAULTS["cyrus_store_message_size_margin_bytes"]
    assert f"maxmessagesize: {limit + margin}\n" in host(MASTER).file("/etc/imapd.conf").content_string
    fits = lmtp_send(MX, "bob", size=limit, tag="size-fits")
    assert fits["results"][0]["code"] == 250, fits
    too_big = lmtp_send(MX, "bob", size=limit + margin + 1, tag="size-too-big")
    assert too_big["results"][0]["code"] == 552, too_big


def _warnings(login: str) -> list[str]:
    with user(MASTER, login) as connection:
        ok(connection.select("INBOX", readonly=True))
        data = ok(connection.uid("SEARCH", "HEADER", "X-Hermes-Quota-Warning", '""'))
        subjects = []
        for uid in (data[0] or b"").split():
            fetched = ok(connection.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
            subjects.append(fetched[0][1].decode().partition(":")[2].strip())
        return subjects


def _run_quota_warnings() -> str:
    """Run the warning service now (the timer's job); its journal lines."""
    command = "systemctl start cyrus-quota-warn.service && journalctl -u cyrus-quota-warn -n 5 -o cat"
    return str(host(MASTER).check_output(command))


def _set_quota(kib: int) -> None:
    with admin(MASTER) as connection:
        ok(connection.setquota("user.quotauser", f"(STORAGE {kib})"))


def test_over_quota_is_deferred_not_lost_and_warned_once_per_crossing() -> None:
    kib = CYRUS["quota_overrides"]["quotauser"] // 1024
    # Over the warning threshold (the model's percentage), under the quota.
    deliver("quotauser", size=int(kib * 1024 * (CYRUS["quota_warning_percent"] + 1) / 100), tag="big")
    with admin(MASTER) as connection:
        quota = ok(connection.getquota("user.quotauser"))[0].decode()
    used = int(re.search(r"STORAGE (\d+) ", quota).group(1))  # type: ignore[union-attr]
    assert CYRUS["quota_warning_percent"] <= used * 100 // kib < 100, quota
    assert _warnings("quotauser") == []
    _run_quota_warnings()
    assert _warnings("quotauser") == [f"Your mailbox is {used * 100 // kib}% full"]
    # Cyrus's own alert, on SELECT.
    with user(MASTER, "quotauser") as connection:
        ok(connection.select("INBOX"))
        assert connection.response("ALERT")[1] != [None]
    # Once per crossing: a second run sends nothing.
    _run_quota_warnings()
    assert len(_warnings("quotauser")) == 1
    # Cyrus lets the message that crosses the limit in, then defers: 452, temporary.
    deliver("quotauser", size=30_000, tag="crossing")
    deferred = lmtp_send(MX, "quotauser", size=5_000, tag="deferred")
    [result] = deferred["results"]
    assert result["code"] == 452 and "4.2.2" in result["reply"], deferred
    # Not lost: the MTA keeps it and retries; with room again it is accepted.
    try:
        _set_quota(kib * 2)
        retried = deliver("quotauser", size=5_000, tag="deferred")
        assert retried[0]["code"] == 250
        # Back under the threshold: the warning re-arms (and none is sent)...
        assert "re-armed quotauser" in _run_quota_warnings()
        assert len(_warnings("quotauser")) == 1
    finally:
        _set_quota(kib)
    # ... so the next crossing warns again.
    _run_quota_warnings()
    assert len(_warnings("quotauser")) == 2


# Lag -------------------------------------------------------------------------------------------

BURST = 1000


def _poll_uidnext(name: str, mailbox: str, until: int, seen: list[tuple[float, int]], deadline: float) -> None:
    """Record (time, UIDNEXT) each time UIDNEXT changes on ``name``, until it reaches ``until``."""
    with admin(name) as connection:
        last = -1
        while time.time() < deadline:
            status = ok(connection.status(mailbox, "(UIDNEXT)"))[0].decode()
            uidnext = int(re.search(r"UIDNEXT (\d+)", status).group(1))  # type: ignore[union-attr]
            if uidnext != last:
                seen.append((time.time(), uidnext))
                last = uidnext
            if uidnext >= until:
                return
            time.sleep(0.01)


def _lags(accepted: list[float], first_uid: int, seen: list[tuple[float, int]]) -> list[float]:
    lags = []
    for i, at in enumerate(accepted):
        uid = first_uid + i
        visible = next((t for t, uidnext in seen if uidnext > uid), None)
        assert visible is not None, f"UID {uid} never became visible"
        lags.append(max(0.0, visible - at))
    return lags


def test_replication_lag_of_a_burst_of_lmtp_deliveries() -> None:
    mailbox = "user.lagtest"
    grant_admin_read("lagtest")
    wait_in_sync()
    with admin(MASTER) as connection:
        status = ok(connection.status(mailbox, "(UIDNEXT)"))[0].decode()
    first_uid = int(re.search(r"UIDNEXT (\d+)", status).group(1))  # type: ignore[union-attr]
    until, deadline = first_uid + BURST, time.time() + 300
    seen: dict[str, list[tuple[float, int]]] = {REPLICA: [], BACKUP: []}
    pollers = [threading.Thread(target=_poll_uidnext, args=(n, mailbox, until, seen[n], deadline)) for n in seen]
    for poller in pollers:
        poller.start()
    started = time.time()
    outcome = lmtp_send(MX, "lagtest", count=BURST, size=2_000, tag="burst")
    for poller in pollers:
        poller.join()
    assert outcome["error"] is None
    results = outcome["results"]
    assert [r["code"] for r in results] == [250] * BURST
    accepted = [r["accepted_at"] for r in results]
    figures: dict[str, Any] = {
        "messages": BURST,
        "message_bytes": 2_000,
        "lmtp_seconds": round(accepted[-1] - started, 2),
        "lmtp_messages_per_second": round(BURST / (accepted[-1] - started), 1),
    }
    for name, points in seen.items():
        lags = _lags(accepted, first_uid, points)
        cuts = statistics.quantiles(lags, n=100, method="inclusive")
        figures[name] = {"p50": round(cuts[49], 3), "p99": round(cuts[98], 3), "max": round(max(lags), 3)}
    (EPHEMERAL / "replication-lag.json").write_text(json.dumps(figures, indent=2))
    summary = "; ".join(
        f"{n}: p50 {f['p50']} s, p99 {f['p99']} s, max {f['max']} s" for n, f in figures.items() if isinstance(f, dict)
    )
    print(
        f"\nreplication lag, {BURST} LMTP messages of 2 kB in {figures['lmtp_seconds']} s "
        f"({figures['lmtp_messages_per_second']}/s): {summary}"
    )
    for name in seen:
        assert figures[name]["p99"] < 30, figures
    assert wait_in_sync().in_sync


# The consistency check -----------------------------------------------------------------------------


def test_status_sees_a_replica_outage_and_its_recovery() -> None:
    from storelib import SPEC

    from hermes.store import PodmanRunner, check_pairs

    assert wait_in_sync().in_sync  # control: in sync before
    replica = host(REPLICA)
    replica.check_output("systemctl stop cyrus-imapd.service")
    try:
        deliver("bob", tag="during-outage")
        time.sleep(2)  # a sync_client run that finds the replica gone
        [status] = check_pairs([SPEC], PodmanRunner())
        channels = {c.channel: c for c in status.channels}
        assert not status.in_sync
        assert not channels["replica"].caught_up and channels["replica"].pending_logs
        behind = {m.mailbox: m for m in channels["replica"].mailboxes}["user.bob"]
        assert "last_uid" in behind.differences and behind.source.last_uid > behind.target.last_uid  # type: ignore[union-attr]
        assert channels["replica"].lag_seconds > 0
    finally:
        replica.check_output("systemctl start cyrus-imapd.service")
    # master restarts sync_client, which replays the pending log; nothing is lost.
    recovered = wait_in_sync(timeout=120)
    assert all(c.lag_seconds == 0 for c in recovered.channels)


def test_hermesctl_store_status() -> None:
    from typer.testing import CliRunner

    from hermes.store.cli import store_app

    runner = CliRunner()
    result = runner.invoke(store_app, ["status", "--estate", str(ESTATE), "--lab", "--pair", "s1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    [pair] = document["pairs"]
    assert pair["in_sync"] and pair["live"] == MASTER
    assert [(c["channel"], c["target"], c["caught_up"]) for c in pair["channels"]] == [
        ("replica", REPLICA, True),
        ("backup", BACKUP, True),
    ]
    assert {m["mailbox"] for m in pair["channels"][0]["mailboxes"]} == set(snapshots()[MASTER].mailboxes)
    table = runner.invoke(store_app, ["status", "--estate", str(ESTATE), "--lab", "--pair", "s1"], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "Pair s1 (live store-master): in sync" in table.stdout
    print("\n" + table.stdout)
    assert ADMIN == "cyrus"
