"""Holding a store pair (`hermesctl store hold/release`), with the hosts replaced by files in memory.

The boundary is the command runner: a fake one keeps each host's holds file and queue, so
the tests see what a hold writes where, that a second hold or a release of a pair not held
writes nothing, and what a release flushes. The real thing is proven in molecule/access.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest
import yaml
from typer.testing import CliRunner

from hermes.errors import UsageError
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.store import cli as store_cli
from hermes.store import hold as hold_module
from hermes.store.hold import (
    MX_HOLDS_FILE,
    PROXY_HOLDS_MAP,
    HoldTargets,
    held_pairs,
    hold,
    hold_targets,
    holding,
    mx_holds_text,
    proxy_holds_text,
    queued_for,
    release,
)
from tests.conftest import LAB

# `exim4 -bp` as Exim 4.96 prints it: one message for two users (bob delivered), one outbound.
QUEUE = """\
 5m  2.1K 1vQkUy-0004Wc-1n <sender@example.org>
        D bob@hermes.lab.test
          alice@hermes.lab.test

 2m   900 1vQkVa-0004Xd-2p <alice@hermes.lab.test>
          someone@example.org

 1m   900 1vQkVb-0004Xe-3q <sender@example.org>
          Alice@Hermes.Lab.Test
          carol@hermes.lab.test

"""


def queue_of(domain: str, user: str) -> str:
    """QUEUE with the estate's mail domain and one of its users in place of alice."""
    return re.sub("alice", user, QUEUE.replace("hermes.lab.test", domain), flags=re.IGNORECASE)


def test_the_holds_files_are_the_ones_the_roles_create() -> None:
    mta = yaml.safe_load((PROJECT_ROOT / "roles/mta/vars/main.yml").read_text())
    proxy = yaml.safe_load((PROJECT_ROOT / "roles/imap_proxy/vars/main/role.yml").read_text())
    assert mta["_mta_store_holds_file"].replace("{{ _mta_lookup_directory }}", mta["_mta_lookup_directory"]) == MX_HOLDS_FILE
    directory = proxy["_imap_proxy_map_directory"]
    assert proxy["_imap_proxy_holds_map"].replace("{{ _imap_proxy_map_directory }}", directory) == PROXY_HOLDS_MAP
    # What a deploy creates is what a release leaves: an empty holds file of the same text.
    for role, made in (("mta", mx_holds_text([])), ("imap_proxy", proxy_holds_text([], {}))):
        tasks = yaml.safe_load((PROJECT_ROOT / "roles" / role / "tasks" / "configure.yml").read_text())
        [create] = [t["ansible.builtin.copy"] for t in tasks if "holds" in t["name"]]
        assert create["content"] == made and create["force"] is False


def test_holds_files_name_their_pairs_and_only_held_users() -> None:
    users = {"p1": ("bob", "carol"), "p2": ("alice",)}
    assert held_pairs(mx_holds_text(["p2", "p1", "p2"]), "mx") == {"p1", "p2"}
    assert held_pairs(mx_holds_text([]), "mx") == frozenset()
    proxy = proxy_holds_text(["p2"], users)
    assert held_pairs(proxy, "proxy") == {"p2"}
    entries = [line.split(":")[0] for line in proxy.splitlines() if not line.startswith("#")]
    assert entries == ["alice"]  # bob and carol, on p1, still log in
    assert "proxy=y nopassword=y host=localhost hostip=127.0.0.1 port=1" in proxy
    assert held_pairs(proxy_holds_text([], users), "proxy") == frozenset()


def test_queued_for_counts_undelivered_messages_of_the_pairs_users() -> None:
    # The first message (alice undelivered) and the third (Alice, any case); not bob's delivered
    # copy, not alice's outbound message, and the third once although two recipients match.
    assert queued_for(QUEUE, "hermes.lab.test", ["alice", "carol"]) == {"1vQkUy-0004Wc-1n", "1vQkVb-0004Xe-3q"}
    assert queued_for(QUEUE, "hermes.lab.test", ["bob"]) == frozenset()
    assert queued_for(QUEUE, "other.test", ["alice"]) == frozenset()


class Hosts:
    """Each host's files and queue in memory, answering the commands hold and release run."""

    def __init__(self, targets: HoldTargets, queue: str = "") -> None:
        self.files = {(h, MX_HOLDS_FILE): mx_holds_text([]) for h in targets.mx_hosts}
        self.files |= {(h, PROXY_HOLDS_MAP): proxy_holds_text([], targets.users) for h in targets.proxy_hosts}
        self.queue = dict.fromkeys(targets.mx_hosts, queue)
        self.writes: list[tuple[str, str]] = []
        self.kicked: list[tuple[str, tuple[str, ...]]] = []
        self.flushed: list[tuple[str, str]] = []

    def run(self, host: str, argv: Sequence[str], *, user: str = "cyrus", stdin: str | None = None) -> str:
        assert user == "root"
        match list(argv):
            case ["cat", path]:
                return self.files[host, path]
            case ["sh", "-c", _, "sh", path, _] if stdin is not None and (host, path) in self.files:
                self.files[host, path] = stdin
                self.writes.append((host, path))
            case ["doveadm", "proxy", "kick", *users]:
                self.kicked.append((host, tuple(users)))
            case ["exim4", "-bp"]:
                return self.queue[host]
            case ["exim4", "-Rf", domain]:
                self.flushed.append((host, domain))
                self.queue[host] = ""
            case _:
                raise AssertionError(f"unexpected command on {host}: {argv}")
        return ""


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hold_module, "MAP_RELOAD_SECONDS", 0)
    monkeypatch.setattr(hold_module, "FLUSH_PAUSE_SECONDS", 0)


def test_hold_writes_each_mx_and_proxy_once_and_release_flushes() -> None:
    targets = hold_targets(load_estate(LAB))
    pair, other = sorted(targets.users)[:2]
    hosts = Hosts(targets, queue_of(targets.mail_domain, targets.users[pair][0]))
    files = sorted(hosts.files)

    results = hold(hosts, targets, pair)
    assert sorted(hosts.writes) == files
    assert len(results) == len(files) and all(r.changed for r in results)
    assert all(held_pairs(hosts.files[f], "mx" if f[1] == MX_HOLDS_FILE else "proxy") == {pair} for f in files)
    assert hosts.kicked == [(h, targets.users[pair]) for h in targets.proxy_hosts]

    # Held again: nothing written. A second pair joins the first.
    hosts.writes.clear()
    assert not any(r.changed for r in hold(hosts, targets, pair)) and hosts.writes == []
    hold(hosts, targets, other)
    assert all(r.held == tuple(sorted([pair, other])) for r in hold(hosts, targets, other))

    released = release(hosts, targets, pair)
    assert all(r.held == (other,) for r in released)
    mx = [r for r in released if r.service == "mx"]
    assert [(r.queued_before, r.queued_after) for r in mx] == [(2, 0)] * len(targets.mx_hosts)
    assert hosts.flushed == [(h, "@" + targets.mail_domain) for h in targets.mx_hosts]
    for host in targets.proxy_hosts:
        assert targets.users[pair][0] + ":" not in hosts.files[host, PROXY_HOLDS_MAP]
        assert targets.users[other][0] + ":" in hosts.files[host, PROXY_HOLDS_MAP]

    # Released again: nothing to write, the flush runs anyway (mail may still wait).
    hosts.writes.clear()
    assert not any(r.changed for r in release(hosts, targets, pair)) and hosts.writes == []


def test_an_unknown_pair_is_refused_before_any_host_is_asked() -> None:
    targets = hold_targets(load_estate(LAB))
    hosts = Hosts(targets)
    with pytest.raises(UsageError, match="no store pair nope"):
        hold(hosts, targets, "nope")
    assert hosts.writes == [] and hosts.kicked == []
    hold(hosts, targets, sorted(targets.users)[0])
    assert hosts.writes


def test_the_commands_print_a_table_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = hold_targets(load_estate(LAB))
    hosts = Hosts(targets)
    monkeypatch.setattr(store_cli, "PodmanRunner", lambda: hosts)
    pair = sorted(targets.users)[0]
    cli = CliRunner()

    refused = cli.invoke(store_cli.store_app, ["hold", "nope", "--lab", "--estate", str(LAB)])
    assert refused.exit_code == 2 and "no store pair nope" in refused.output and hosts.writes == []

    held = cli.invoke(store_cli.store_app, ["hold", pair, "--lab", "--estate", str(LAB)])
    assert held.exit_code == 0, held.output
    assert f"Store pair {pair}: held" in held.stdout

    released = cli.invoke(store_cli.store_app, ["release", pair, "--lab", "--json", "--estate", str(LAB)])
    assert released.exit_code == 0, released.output
    document = json.loads(released.stdout)
    assert document["held"] is False
    assert sorted((h["host"], h["service"]) for h in document["hosts"]) == sorted(
        [(h, "mx") for h in targets.mx_hosts] + [(h, "proxy") for h in targets.proxy_hosts]
    )
    assert all(h["held"] == [] for h in document["hosts"])


def test_mail_still_queued_after_a_release_fails_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = hold_targets(load_estate(LAB))
    pair, user = next((p, users[0]) for p, users in sorted(targets.users.items()) if users)
    hosts = Hosts(targets, queue_of(targets.mail_domain, user))

    def stuck(host: str, domain: str) -> None:  # the store still refuses: the flush delivers nothing
        hosts.flushed.append((host, domain))

    monkeypatch.setattr(store_cli, "PodmanRunner", lambda: hosts)
    original = hosts.run

    def run(host: str, argv: Sequence[str], **kwargs: object) -> str:
        if list(argv[:2]) == ["exim4", "-Rf"]:
            stuck(host, argv[2])
            return ""
        return original(host, argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hosts, "run", run)
    result = CliRunner().invoke(store_cli.store_app, ["release", pair, "--lab", "--estate", str(LAB)])
    assert result.exit_code == 1, result.output
    # Each MX was flushed again while the held mail was still there, then the command gave up.
    assert sorted(hosts.flushed) == sorted([(h, "@" + targets.mail_domain) for h in targets.mx_hosts] * hold_module.FLUSH_RUNS)


def test_a_release_counts_the_held_mail_only_and_flushes_again_while_some_is_locked() -> None:
    targets = hold_targets(load_estate(LAB))
    pair, user = next((p, users[0]) for p, users in sorted(targets.users.items()) if users)
    held = queue_of(targets.mail_domain, user)
    hosts = Hosts(targets, held)
    # The first forced run delivers all but a message another process has locked; meanwhile a
    # new message arrives (being delivered by its own process): neither is mail left waiting
    # once the second run has delivered the locked one.
    arrived = f" 0m   900 1vQkZz-0004Zz-9z <sender@example.org>\n          {user}@{targets.mail_domain}\n\n"
    [locked_head, *_] = [line for line in held.splitlines() if "1vQkUy" in line]
    runs: dict[str, int] = {}
    original = hosts.run

    def run(host: str, argv: Sequence[str], **kwargs: object) -> str:
        if list(argv[:2]) == ["exim4", "-Rf"]:
            runs[host] = runs.get(host, 0) + 1
            locked = locked_head + f"\n          {user}@{targets.mail_domain}\n\n"
            hosts.queue[host] = (locked if runs[host] == 1 else "") + arrived
            return ""
        return original(host, argv, **kwargs)  # type: ignore[arg-type]

    hosts.run = run  # type: ignore[method-assign]
    mx = [r for r in release(hosts, targets, pair) if r.service == "mx"]
    assert [(r.queued_before, r.queued_after, r.waiting) for r in mx] == [(2, 0, False)] * len(targets.mx_hosts)
    assert runs == dict.fromkeys(targets.mx_hosts, 2)


def test_holding_names_the_hosts_whose_file_holds_the_pair() -> None:
    targets = hold_targets(load_estate(LAB))
    # The MX hosts hold the first pair; the proxies (the same hosts in the lab) hold nothing.
    files = {(host, MX_HOLDS_FILE): mx_holds_text(["cyrus-1"]) for host in targets.mx_hosts}
    files |= {(host, PROXY_HOLDS_MAP): proxy_holds_text([], targets.users) for host in targets.proxy_hosts}

    class Hosts:
        def run(self, host: str, argv: Sequence[str], *, user: str = "cyrus", stdin: str | None = None) -> str:
            return files[host, argv[-1]]

    assert holding(Hosts(), targets, "cyrus-1") == list(targets.mx_hosts)
    assert holding(Hosts(), targets, "cyrus-2") == []
