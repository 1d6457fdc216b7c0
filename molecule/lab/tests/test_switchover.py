"""A planned switchover of a store pair under load, and back, on the deployed lab estate.

While mail flows through both MX hosts to a user on each pair and an IMAP client logs in
through a proxy again and again, `hermesctl store switchover` makes the pair's spare live.
Afterwards every accepted message is in its mailbox exactly once, the mailbox kept its
UIDVALIDITY, every message its UID and POP unique id (a POP client downloads nothing again)
and a flag set before, a deploy of the same hosts changes nothing, and the other pair never
noticed. The switchover records the new live member in the lab's estate file and
renders it, as it does for any estate; switching back leaves both as they were.
The figures (how long logins were refused, how much mail was queued) are printed for
docs/store.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from lablib import (
    CA,
    ESTATE,
    LOADED,
    ORIGINAL,
    OTHER,
    PAIR,
    address,
    assert_each_accepted_once,
    assert_uids_kept,
    flag_one,
    hermesctl,
    mailbox,
    switchover,
    wait_in_sync,
)

from hermes.lab.traffic import Load, Mailbox, outage
from hermes.loader import load_estate


def mail_name_target(user: str) -> str:
    """Where the estate's DNS sends the user's mail[a-z] name (its CNAME's target)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [address(ESTATE.services.dns.hosts[0])]
    [answer] = resolver.resolve(f"mail{user[0]}.{ESTATE.domains.hosts}", "CNAME")
    return str(answer.target)


@pytest.fixture(scope="module")
def switched(estate_file: Path, users: dict[str, str], passwords: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The first pair switched over under load, then back; what was seen on the way."""
    wait_in_sync(estate_file)
    before = {pair: mailbox(user, passwords[user]) for pair, user in users.items()}
    flagged = flag_one(users[PAIR.name], passwords[users[PAIR.name]])
    wait_in_sync(estate_file)
    with Load(LOADED, CA, users, passwords, client=users[PAIR.name]) as load:
        time.sleep(3)
        there = switchover(estate_file, PAIR.name)
        time.sleep(3)
    seen: dict[str, Any] = {"load": load, "there": there, "before": before, "flagged": flagged}
    seen["live"] = load_estate(estate_file).estate.services.store_pairs[0].live
    seen["name_there"] = mail_name_target(users[PAIR.name])
    seen["after"] = {pair: mailbox(user, passwords[user]) for pair, user in users.items()}
    # The flip deployed only what a live member changes; a whole deploy of the same hosts
    # finds nothing left to do.
    seen["redeploy"] = json.loads(hermesctl("deploy", "--lab", "--json", "--limit", ",".join(there["deployed_to"])))
    wait_in_sync(estate_file)
    seen["back"] = switchover(estate_file, PAIR.name)
    seen["name_back"] = mail_name_target(users[PAIR.name])
    yield seen


def test_the_spare_is_live_and_every_accepted_message_is_there_once(switched: dict[str, Any], users: dict[str, str]) -> None:
    load: Load = switched["load"]
    there = switched["there"]
    assert switched["live"] == PAIR.spare == there["live"]
    assert [s["step"] for s in there["steps"]] == ["gate", "hold", "drain", "stop", "flip", "verify", "release", "confirm"]
    # The flip, the tasks tagged store_live, did all a live member changes: the confirming
    # deploy (every task of the roles that could) changed nothing on its hosts, and moved the
    # user's mail[a-z] name (the zones are its part) to the new live member, and back.
    assert there["confirm_changed"] == 0 == switched["back"]["confirm_changed"]
    assert switched["name_there"] == f"{PAIR.spare}.{ESTATE.domains.hosts}."
    assert switched["name_back"] == f"{PAIR.live}.{ESTATE.domains.hosts}."
    # Nothing refused, 4xx or 5xx, and no MX restarted (a switchover changes no Exim
    # configuration): the hold queues.
    assert load.refused == []
    assert_each_accepted_once(load, switched["after"], users)
    refused = sum(not a.ok for a in load.imap)
    print(
        f"\nswitchover of {PAIR.name} under load: held {there['held_seconds']:.1f} s, "
        f"{there['queued_messages']} message(s) queued, {refused} of {len(load.imap)} IMAP logins refused "
        f"(out {outage(load.imap):.1f} s), POP out {outage(load.pop):.1f} s; "
        f"steps {[(s['step'], round(s['seconds'], 1)) for s in there['steps']]}; "
        f"back: held {switched['back']['held_seconds']:.1f} s"
    )


def test_uids_pop_ids_and_flags_survive_and_the_other_pair_is_untouched(switched: dict[str, Any], users: dict[str, str]) -> None:
    # Every message there before keeps its UID, and POP clients see no message as new.
    assert_uids_kept(switched["before"], switched["after"])
    for pair in users:
        before: Mailbox = switched["before"][pair]
        after: Mailbox = switched["after"][pair]
        assert before.uidls <= after.uidls, pair
        assert len(after.uids) > len(before.uids), pair  # the load's mail is there too
    assert switched["flagged"] in switched["after"][PAIR.name].flagged
    load: Load = switched["load"]
    # The POP client, downloading new mail all along by unique id, downloaded nothing twice,
    # and got the load's mail.
    assert load.downloaded and max(load.downloaded.values()) == 1, {s: n for s, n in load.downloaded.items() if n > 1}
    assert any(subject.startswith("load ") for subject in load.downloaded)
    # Both clients could log in again once the pair was released: out of service no longer
    # than it was held, give or take one failed attempt (a held login waits 3 s for its answer).
    for client in (load.imap, load.pop):
        assert client[-1].ok and outage(client) <= switched["there"]["held_seconds"] + 5


def test_the_flip_left_nothing_for_a_deploy_to_do(switched: dict[str, Any]) -> None:
    redeploy = switched["redeploy"]
    assert redeploy["status"] == "successful" and redeploy["changed"] == 0, redeploy["hosts"]
    assert set(redeploy["hosts"]) == set(switched["there"]["deployed_to"])


def test_switched_back_the_estate_is_as_deployed(switched: dict[str, Any], estate_file: Path) -> None:
    assert switched["back"]["live"] == PAIR.live
    assert load_estate(estate_file).estate.services.store_pairs[0].live == PAIR.live
    assert estate_file.read_bytes() == ORIGINAL
    hermesctl("render", "--check", "--estate", str(estate_file))  # the committed render too
    wait_in_sync(estate_file)
    assert OTHER.live == load_estate(estate_file).estate.services.store_pairs[1].live
