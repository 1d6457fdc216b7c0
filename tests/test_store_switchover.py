"""The switchover's order of steps and its refusals, with the hosts, the check and the deploy
replaced: a recording runner (tests/test_store_hold.py's), scripted pair statuses and a
deploy that records its limit. The real thing runs in molecule/lab."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import hermes.cli as cli_module
from hermes.cli import app
from hermes.errors import EstateError, PrecheckError, StoreError
from hermes.loader import load_estate
from hermes.store import switchover as switchover_module
from hermes.store.check import Agreement, ChannelStatus, MailboxComparison, PairSpec, PairStatus
from hermes.store.examine import SyncLogFile
from hermes.store.hold import MX_HOLDS_FILE, held_pairs, hold_targets
from hermes.store.operation import CYRUS_UNIT, FLIP_TAGS, PROVISION_TAG, DeployNotStarted, FlipPlan, Step, record_pair
from hermes.store.switchover import Switchover, SwitchoverError, switch, switchover_plan
from tests.conftest import LAB, WriteEstate
from tests.test_store_hold import Hosts

IN_SYNC = PairStatus("cyrus-1", "store-1a", (ChannelStatus("replica", "store-1a", "store-1b", (), None, ()),))
# A minute behind: too far for the gate (30 s), and never in sync.
BEHIND = PairStatus(
    "cyrus-1",
    "store-1a",
    (ChannelStatus("replica", "store-1a", "store-1b", (SyncLogFile("replica", "log", 10, 0.0),), 60.0, ()),),
)
# A second behind, as under load: the gate lets it through, the drain waits for it.
BUSY = PairStatus(
    "cyrus-1",
    "store-1a",
    (ChannelStatus("replica", "store-1a", "store-1b", (SyncLogFile("replica", "log", 10, 0.0),), 1.0, ()),),
)


class Cyrus(Hosts):
    """Hosts that also answer systemctl, recording it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.units: list[tuple[str, str]] = []

    def run(self, host: str, argv: Any, *, user: str = "cyrus", stdin: str | None = None) -> str:
        if list(argv[:1]) == ["systemctl"]:
            self.units.append((host, argv[1]))
            return ""
        return super().run(host, argv, user=user, stdin=stdin)


@pytest.fixture
def statuses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[PairStatus]]:
    """Scripted answers of the check, in order; the last one repeats."""
    script: list[PairStatus] = []
    asked: list[list[PairSpec]] = []

    def answer(specs: list[PairSpec], runner: object) -> PairStatus:
        asked.append(specs)
        return script.pop(0) if len(script) > 1 else script[0]

    monkeypatch.setattr(switchover_module, "_in_sync", answer)
    monkeypatch.setattr(switchover_module.time, "sleep", lambda _: None)
    monkeypatch.setattr("hermes.store.hold.MAP_RELOAD_SECONDS", 0)
    yield script


def test_a_switchover_holds_drains_stops_flips_verifies_and_releases(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    statuses += [BUSY, BUSY, IN_SYNC]  # the gate under load, the drain once held
    hosts = Cyrus(hold_targets(loaded))
    deployed: list[tuple[set[str], tuple[str, ...], tuple[str, ...], bool]] = []

    def deploy(plan: FlipPlan, limit: str, tags: tuple[str, ...], skip: tuple[str, ...]) -> dict[str, int]:
        # The old live member is stopped; the pair is held while the flip deploys, not while the
        # confirming deploy runs (which changes the zones only).
        held = {frozenset(held_pairs(text, "mx")) for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE}
        assert hosts.units == [("store-1a", "stop")] and len(held) == 1
        assert (plan.old_live, plan.new_live) == ("store-1a", "store-1b")
        deployed.append((set(limit.split(",")), tags, skip, held == {frozenset({"cyrus-1"})}))
        return dict.fromkeys(loaded.estate.services.dns.hosts, 2 if tags != FLIP_TAGS else 0)

    report = switch(loaded, "cyrus-1", hosts, deploy)
    assert [s.name for s in report.steps] == ["gate", "hold", "drain", "stop", "flip", "verify", "release", "confirm"]
    [(flipped, tags, skip, held), (confirmed, confirm_tags, confirm_skip, confirm_held)] = deployed
    # The flip: only what names the live member, while held, on the pair, every MX and proxy;
    # the DNS hosts in the confirming deploy, after the release. No provisioning in either.
    services = loaded.estate.services
    assert flipped == {"store-1a", "store-1b", "backup-1", *services.mx.hosts, *services.proxy.hosts}
    assert confirmed == flipped | set(services.dns.hosts) and not set(services.dns.hosts) <= flipped
    assert held and tags == FLIP_TAGS and "always" in skip and "cyrus_store_run" not in tags
    assert not confirm_held and "cyrus_store_run" in confirm_tags and "dns_configure" in confirm_tags
    assert confirm_skip == (PROVISION_TAG,) and report.confirm_changed == 0
    assert report.steps[-1].detail == "the flip was complete; 2 change(s) for the mail[a-z] names"
    # Not the other pair.
    assert not {"store-2a", "store-2b"} & confirmed
    assert all(not held_pairs(text, "mx") for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE)


def test_a_pair_out_of_sync_is_refused_before_anything_is_touched(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    statuses += [BEHIND]
    hosts = Cyrus(hold_targets(loaded))
    with pytest.raises(SwitchoverError, match=r"cyrus-1 cannot be switched over: replica: 60 s behind") as refused:
        switch(loaded, "cyrus-1", hosts, lambda *_: pytest.fail("deployed"))
    assert not refused.value.held and hosts.writes == [] and hosts.units == []


def test_a_split_mailbox_is_refused_however_small_the_lag(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    split = MailboxComparison("user.cet1", Agreement.DIFFER, None, None, ("unique_id",))
    statuses += [PairStatus("cyrus-1", "store-1a", (ChannelStatus("replica", "store-1a", "store-1b", (), None, (split,)),))]
    hosts = Cyrus(hold_targets(loaded))
    with pytest.raises(SwitchoverError, match=r"replica: user.cet1 differ \(unique_id\)"):
        switch(loaded, "cyrus-1", hosts, lambda *_: pytest.fail("deployed"))
    assert hosts.writes == [] and hosts.units == []


def test_a_pair_that_does_not_drain_is_released_and_its_master_restarted(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    statuses += [IN_SYNC, BEHIND]  # in sync at the gate, then stuck
    hosts = Cyrus(hold_targets(loaded))
    with pytest.raises(SwitchoverError, match="did not catch up within 0 s") as stopped:
        switch(loaded, "cyrus-1", hosts, lambda *_: pytest.fail("deployed"), drain_timeout=0)
    assert not stopped.value.held
    assert [s.name for s in stopped.value.steps] == ["gate", "hold"]
    assert hosts.units == [("store-1a", "start")]
    assert all(not held_pairs(text, "mx") for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE)


def test_a_failed_flip_leaves_the_pair_held(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    statuses += [IN_SYNC]
    hosts = Cyrus(hold_targets(loaded))

    def broken(plan: FlipPlan, limit: str, tags: tuple[str, ...], skip: tuple[str, ...]) -> int:
        raise EstateError("lab.yml", [])

    with pytest.raises(SwitchoverError, match="the pair is still HELD") as stopped:
        switch(loaded, "cyrus-1", hosts, broken)
    assert stopped.value.held
    assert all(held_pairs(text, "mx") == {"cyrus-1"} for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE)


def test_the_confirming_deploy_reports_what_the_flip_left_behind(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    statuses += [IN_SYNC]

    def deploy(
        changed_by_confirm: dict[str, int] | Exception,
    ) -> Callable[[FlipPlan, str, tuple[str, ...], tuple[str, ...]], dict[str, int]]:
        def run(plan: FlipPlan, limit: str, tags: tuple[str, ...], skip: tuple[str, ...]) -> dict[str, int]:
            if tags == FLIP_TAGS:
                return {"store-1b": 3}  # the flip's own changes are not what is reported
            if isinstance(changed_by_confirm, Exception):
                raise changed_by_confirm
            return changed_by_confirm

        return run

    # Changes on the flip's hosts are what it left behind; the DNS hosts' are the names.
    [dns] = loaded.estate.services.dns.hosts
    report = switch(loaded, "cyrus-1", Cyrus(hold_targets(loaded)), deploy({"ppsw-1": 1, "store-1a": 1, dns: 3}))
    assert report.confirm_changed == 2
    assert report.steps[-1].detail == "2 change(s) the flip had left behind; 3 change(s) for the mail[a-z] names"
    # A confirming deploy that fails: switched over and released all the same, and said so.
    hosts = Cyrus(hold_targets(loaded))
    with pytest.raises(SwitchoverError, match="store-1b is live, but the confirming deploy failed: unreachable") as failed:
        switch(loaded, "cyrus-1", hosts, deploy(StoreError("unreachable")))
    assert not failed.value.held and [s.name for s in failed.value.steps][-1] == "release"
    assert all(not held_pairs(text, "mx") for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE)


class Failing(Cyrus):
    """Cyrus hosts where the commands matching ``fails`` stop answering."""

    def __init__(self, targets: Any, fails: Callable[[str, list[str]], bool]) -> None:
        super().__init__(targets)
        self.fails = fails

    def run(self, host: str, argv: Any, *, user: str = "cyrus", stdin: str | None = None) -> str:
        if self.fails(host, list(argv)):
            raise StoreError(f"{host}: ssh exited 255: Connection timed out")
        return super().run(host, argv, user=user, stdin=stdin)


def test_a_host_lost_before_the_flip_is_backed_out_and_after_it_keeps_the_hold(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    statuses += [IN_SYNC]
    mx = hold_targets(loaded).mx_hosts[-1]

    # The live member does not answer systemctl: the hold is undone (Cyrus start is tried).
    lost = Failing(hold_targets(loaded), lambda host, argv: host == "store-1a" and argv == ["systemctl", "stop", CYRUS_UNIT])
    with pytest.raises(SwitchoverError, match="store-1a: ssh exited 255") as stopped:
        switch(loaded, "cyrus-1", lost, lambda *_: pytest.fail("deployed"))
    assert not stopped.value.held
    assert all(not held_pairs(text, "mx") for (_, path), text in lost.files.items() if path == MX_HOLDS_FILE)

    # ... and if backing out fails too, the pair is reported held.
    stuck = Failing(hold_targets(loaded), lambda host, argv: host == "store-1a" and argv[0] == "systemctl")
    with pytest.raises(SwitchoverError, match="backing out failed too") as both:
        switch(loaded, "cyrus-1", stuck, lambda *_: pytest.fail("deployed"))
    assert both.value.held

    # An MX that stops answering after the flip, before its holds file is rewritten: the pair
    # is reported held. One that fails only its queue run: released, the mail said to wait.
    flipped: list[bool] = []
    late = Failing(hold_targets(loaded), lambda host, argv: bool(flipped) and host == mx and argv[0] == "cat")
    with pytest.raises(SwitchoverError, match="after the flip") as after:
        switch(loaded, "cyrus-1", late, lambda *_: flipped.append(True))
    assert after.value.held and [s.name for s in after.value.steps][-1] == "verify"
    slow = Failing(hold_targets(loaded), lambda host, argv: host == mx and argv[:2] == ["exim4", "-Rf"])
    report = switch(loaded, "cyrus-1", slow, lambda *_: {})
    assert report.waiting and f"flush failed on {mx}" in report.steps[-2].detail
    [failed] = [d for d in report.drained if d["flush_error"]]
    assert failed["host"] == mx and len(report.drained) == len(hold_targets(loaded).mx_hosts)
    assert all(not held_pairs(text, "mx") for (_, path), text in slow.files.items() if path == MX_HOLDS_FILE)


def test_a_flip_that_cannot_start_or_an_interrupt_is_backed_out(statuses: list[PairStatus]) -> None:
    loaded = load_estate(LAB)
    statuses += [IN_SYNC]

    def not_started(*_: object) -> None:
        raise DeployNotStarted("vault: no such file")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    for deploy, why, held in ((not_started, "could not start: vault", False), (interrupted, "interrupted", True)):
        hosts = Cyrus(hold_targets(loaded))
        with pytest.raises(SwitchoverError, match=why) as stopped:
            switch(loaded, "cyrus-1", hosts, deploy)
        assert stopped.value.held is held
        # Not started: Cyrus back on the old live member and the pair released. Interrupted
        # mid-deploy: nobody knows which member is live, so it stays held.
        assert (("store-1a", "start") in hosts.units) is not held
        mx_held = {held_pairs(text, "mx") == {"cyrus-1"} for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE}
        assert mx_held == {held}


def test_record_live_changes_one_value_and_refuses_a_bad_member(tmp_path: Path) -> None:
    for source in LAB.parent.glob(LAB.stem + ".*"):
        shutil.copy(source, tmp_path / source.name)
    path = tmp_path / LAB.name
    text = path.read_text()
    record_pair(path, "cyrus-2", live="store-2b", fenced=None)
    assert load_estate(path).estate.services.store_pairs[1].live == "store-2b"
    # Comments, layout and the other pair as they were: only the one value differs.
    changed = [(a, b) for a, b in zip(text.splitlines(), path.read_text().splitlines(), strict=True) if a != b]
    assert changed == [("      live: store-2a", "      live: store-2b")]
    # A member that is not the pair's: refused by the model, the file put back.
    with pytest.raises(EstateError, match="neither the master nor the replica"):
        record_pair(path, "cyrus-2", live="store-1a", fenced=None)
    assert load_estate(path).estate.services.store_pairs[1].live == "store-2b"


def test_an_unknown_pair_has_no_plan() -> None:
    with pytest.raises(Exception, match="no store pair nope"):
        switchover_plan(load_estate(LAB), "nope")
    assert switchover_plan(load_estate(LAB), "cyrus-2").new_live == "store-2b"


def test_the_command_refuses_an_unknown_pair_and_a_stale_render(write_estate: WriteEstate) -> None:

    cli = CliRunner()
    unknown = cli.invoke(app, ["store", "switchover", "nope", "--lab", "--estate", str(LAB)])
    assert unknown.exit_code == 2 and "no store pair nope" in unknown.output, unknown.output
    # A copy of the lab with its render not written: nothing may be switched until it is.
    stale = cli.invoke(app, ["store", "switchover", "cyrus-1", "--lab", "--estate", str(write_estate({}))])
    assert stale.exit_code == 1 and "is stale" in stale.output, stale.output


def test_each_switchover_leaves_a_record_done_or_stopped(write_estate: WriteEstate, monkeypatch: pytest.MonkeyPatch) -> None:
    estate = write_estate({})
    cli = CliRunner()
    assert cli.invoke(app, ["render", "--estate", str(estate)]).exit_code == 0
    steps = [Step("gate", 0.1, "ok"), Step("hold", 1.0, "held")]

    # What the flip's deploy needs is checked before anything is held: a failed precheck stops it.
    def unfit(*_: object, **__: object) -> None:
        raise PrecheckError(["vault: missing vault_hermes_repl_password"])

    def never(*_: object, **__: object) -> None:
        pytest.fail("switched over after a failed precheck")

    monkeypatch.setattr(cli_module, "_deployment", unfit)
    monkeypatch.setattr(switchover_module, "switch", never)
    refused = cli.invoke(app, ["store", "switchover", "cyrus-1", "--lab", "--estate", str(estate)])
    assert refused.exit_code == 4 and "vault_hermes_repl_password" in refused.output, refused.output
    monkeypatch.setattr(cli_module, "_deployment", lambda *_, **__: None)
    monkeypatch.setattr(cli_module, "_run", lambda *_, **__: None)

    def stopped(*_: object, **__: object) -> Switchover:
        raise SwitchoverError("the flip's deploy failed: boom", steps, held=True)

    monkeypatch.setattr(switchover_module, "switch", stopped)
    failed = cli.invoke(app, ["store", "switchover", "cyrus-1", "--lab", "--estate", str(estate)])
    assert failed.exit_code == 1 and "still HELD" in failed.output, failed.output

    def done(loaded: Any, pair: str, *_: object, **__: object) -> Switchover:
        report = Switchover(switchover_plan(loaded, pair), steps, held_seconds=1.0)
        return report

    monkeypatch.setattr(switchover_module, "switch", done)
    succeeded = cli.invoke(app, ["store", "switchover", "cyrus-1", "--lab", "--json", "--estate", str(estate)])
    assert succeeded.exit_code == 0, succeeded.output
    assert json.loads(succeeded.stdout)["result"] == "done"

    records = sorted((estate.parent / ".hermes" / "lab" / "runs" / "operations").glob("*-switchover-cyrus-1.json"))
    documents = [json.loads(path.read_text()) for path in records]
    assert sorted(d["result"] for d in documents) == ["done", "stopped"]
    [held] = [d for d in documents if d["result"] == "stopped"]
    assert held["held"] is True and [s["step"] for s in held["steps"]] == ["gate", "hold"] and held["who"]


def test_a_switchover_checks_the_hosts_before_it_holds_a_failover_after_it_serves(
    write_estate: WriteEstate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A switchover's users are served until the hold: the hosts' checks (an Ansible run) come
    first. A failover's users are out since the member died: its confirming deploy checks them."""
    from hermes.store import failover as failover_module
    from hermes.store.failover import Failover, failover_plan

    estate = write_estate({})
    cli = CliRunner()
    assert cli.invoke(app, ["render", "--estate", str(estate)]).exit_code == 0
    runs: list[str] = []
    monkeypatch.setattr(cli_module, "_deployment", lambda *_, **__: None)
    monkeypatch.setattr(cli_module, "_run", lambda _, title, *__: runs.append(title))

    def switched(loaded: Any, pair: str, *_: object, **__: object) -> Switchover:
        runs.append("operation")
        return Switchover(switchover_plan(loaded, pair), [Step("gate", 0.1, "ok")], held_seconds=1.0)

    def failed_over(loaded: Any, pair: str, *_: object, **__: object) -> Failover:
        runs.append("operation")
        return Failover(failover_plan(loaded, pair), [Step("gate", 0.1, "ok")], held_seconds=1.0)

    monkeypatch.setattr(switchover_module, "switch", switched)
    monkeypatch.setattr(failover_module, "fail_over", failed_over)
    switchover = cli.invoke(app, ["store", "switchover", "cyrus-1", "--lab", "--estate", str(estate)])
    assert switchover.exit_code == 0, switchover.output
    limit = switchover_plan(load_estate(estate), "cyrus-1").limit
    assert runs == [f"checking {limit}", "operation"]
    runs.clear()
    failover = cli.invoke(app, ["store", "failover", "cyrus-1", "--lab", "--estate", str(estate)])
    assert failover.exit_code == 0, failover.output
    assert runs == ["operation"]
