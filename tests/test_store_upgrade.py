"""The rolling upgrade's sequence, gates and resumption, on the lab estate file with its hosts,
the playbook, the reboots and the switchovers replaced (the switchover writes the estate file
as the real one does). The real thing runs in molecule/lab (tests/test_upgrade.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hermes.errors import StoreError, UsageError
from hermes.loader import LoadedEstate, load_estate
from hermes.store import upgrade as upgrade_module
from hermes.store.operation import FlipPlan, PairOperation, record_pair
from hermes.store.upgrade import Budget, Progress, UpgradeError, rolling_upgrade
from tests.conftest import LAB

PAIRS = ["cyrus-1", "cyrus-2"]


class Members:
    """The estate file as the switchovers leave it; upgrades, reboots and switchovers recorded."""

    def __init__(self, estate: Path) -> None:
        self.estate = estate
        self.done: list[tuple[str, str]] = []
        self.failing: set[str] = set()

    def load(self) -> LoadedEstate:
        return load_estate(self.estate)

    def live(self, pair: str) -> str:
        [model] = [p for p in self.load().estate.services.store_pairs if p.name == pair]
        return model.live

    def upgrade(self, host: str) -> str:
        if host in self.failing:
            raise StoreError(f"{host}: apt failed")
        assert all(self.live(p.name) != host for p in self.load().estate.services.store_pairs), f"{host} is live"
        self.done.append(("upgrade", host))
        return "upgraded"

    def reboot(self, host: str) -> str:
        self.done.append(("reboot", host))
        return "rebooted"

    def switchover(self, pair: str) -> PairOperation:
        [model] = [p for p in self.load().estate.services.store_pairs if p.name == pair]
        spare = model.replica if model.live == model.master else model.master
        record_pair(self.estate, pair, live=spare, fenced=None)
        self.done.append(("switchover", f"{pair}:{spare}"))
        return PairOperation(FlipPlan("switchover", pair, model.live, spare, (), ()), held_seconds=8.0)


class Hosts:
    """Answers whether a host needs a reboot."""

    def __init__(self, needing: frozenset[str] | set[str] = frozenset()) -> None:
        self.needing = needing

    def run(self, host: str, argv: Any, *, user: str = "cyrus", stdin: str | None = None) -> str:
        assert upgrade_module.REBOOT_REQUIRED in argv[-1]
        return "yes\n" if host in self.needing else ""


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    shutil.copy(LAB, tmp_path / "lab.yml")
    shutil.copy(LAB.with_name("lab.accounts"), tmp_path / "lab.accounts")
    return tmp_path / "lab.yml"


@pytest.fixture
def health(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str | None]]]:
    """Scripted answers of the health check per pair, in order (the last repeats); healthy by default."""
    script: dict[str, list[str | None]] = {}

    def unhealthy(runner: object, loaded: LoadedEstate, pair: str, max_lag: float) -> str | None:
        answers = script.setdefault(pair, [None])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(upgrade_module, "unhealthy", unhealthy)
    yield script


def run(members: Members, progress: Progress, *, hosts: Hosts | None = None, **options: Any) -> Any:
    slept: list[float] = []
    sleep: Callable[[float], None] = slept.append
    budget = options.pop("budget", Budget(3, 5.0))
    report = rolling_upgrade(members, hosts or Hosts(), progress, budget, sleep=sleep, **options)
    return report, slept


def test_each_pair_upgrades_its_spare_switches_over_upgrades_the_other_and_switches_back(
    estate: Path, health: dict[str, list[str | None]]
) -> None:
    members = Members(estate)
    original = estate.read_bytes()
    progress = Progress.open(estate.parent / "progress.json", PAIRS, switch_back=True, fresh=False)
    report, _ = run(members, progress, hosts=Hosts({"store-2b"}))
    # Only ever a spare is upgraded (Members.upgrade asserts it); a reboot only where the
    # upgrade asked for one.
    assert members.done == [
        ("upgrade", "store-1b"),
        ("switchover", "cyrus-1:store-1b"),
        ("upgrade", "store-1a"),
        ("switchover", "cyrus-1:store-1a"),
        ("upgrade", "store-2b"),
        ("reboot", "store-2b"),
        ("switchover", "cyrus-2:store-2b"),
        ("upgrade", "store-2a"),
        ("switchover", "cyrus-2:store-2a"),
    ]
    assert [s.name for s in report.steps[:8]] == [
        "cyrus-1: gate",
        "cyrus-1: upgrade store-1b",
        "cyrus-1: caught up",
        "cyrus-1: switchover",
        "cyrus-1: upgrade store-1a",
        "cyrus-1: caught up",
        "cyrus-1: switch back",
        "cyrus-1: gate after",
    ]
    assert estate.read_bytes() == original
    assert not progress.path.exists()  # finished: nothing to resume


def test_without_switch_back_the_pairs_stay_on_their_other_member_and_reboot_is_asked(
    estate: Path, health: dict[str, list[str | None]]
) -> None:
    members = Members(estate)
    progress = Progress.open(estate.parent / "progress.json", ["cyrus-2"], switch_back=False, fresh=False)
    run(members, progress, reboot=True)
    assert members.done == [
        ("upgrade", "store-2b"),
        ("reboot", "store-2b"),
        ("switchover", "cyrus-2:store-2b"),
        ("upgrade", "store-2a"),
        ("reboot", "store-2a"),
    ]
    assert members.live("cyrus-2") == "store-2b" and members.live("cyrus-1") == "store-1a"


def test_a_gate_waits_its_budget_and_then_stops_the_run(estate: Path, health: dict[str, list[str | None]]) -> None:
    members = Members(estate)
    path = estate.parent / "progress.json"
    # Healthy on the third of three checks: the gate passes, having waited twice.
    health["cyrus-1"] = ["Cyrus on store-1b is inactive", "not in sync", None]
    report, slept = run(members, Progress.open(path, ["cyrus-1"], switch_back=True, fresh=False))
    assert report.steps[0].detail == "healthy (check 3 of 3)" and slept == [5.0, 5.0]
    # Never healthy within the budget: stopped before anything was touched.
    members.done.clear()
    health["cyrus-1"] = ["Cyrus on store-1b is inactive"]
    with pytest.raises(UpgradeError, match=r"cyrus-1: gate: Cyrus on store-1b is inactive after 3 checks 5 s apart") as stopped:
        run(members, Progress.open(path, ["cyrus-1"], switch_back=True, fresh=False))
    assert members.done == [] and [s.name for s in stopped.value.steps] == []
    with pytest.raises(UsageError, match="--retries"):
        Budget(0, 5.0)


def test_a_stopped_run_resumes_where_it_stopped(estate: Path, health: dict[str, list[str | None]]) -> None:
    members = Members(estate)
    path = estate.parent / "progress.json"
    # The first pair is done; the second stops after its switchover, its old live member's upgrade failing.
    members.failing = {"store-2a"}
    with pytest.raises(UpgradeError, match="cyrus-2: upgrading store-2a: store-2a: apt failed"):
        run(members, Progress.open(path, PAIRS, switch_back=True, fresh=False))
    assert members.live("cyrus-2") == "store-2b"  # serving, from the upgraded member
    assert path.is_file()
    # Another run with other pairs is refused while this one is unfinished; --fresh forgets it.
    with pytest.raises(UsageError, match="an unfinished upgrade of cyrus-1, cyrus-2"):
        Progress.open(path, ["cyrus-2"], switch_back=True, fresh=False)
    assert Progress.open(path, ["cyrus-2"], switch_back=True, fresh=True).state == {}
    # The same run again: the first pair skipped, the second neither upgraded nor switched
    # over again, only its other member upgraded, then switched back.
    members.failing, members.done = set(), []
    resumed = Progress.open(path, PAIRS, switch_back=True, fresh=False)
    report, _ = run(members, resumed)
    assert report.resumed and report.skipped == ["cyrus-1"]
    assert members.done == [("upgrade", "store-2a"), ("switchover", "cyrus-2:store-2a")]
    assert not path.exists()


def test_a_live_member_is_never_upgraded_in_place(estate: Path, health: dict[str, list[str | None]]) -> None:
    members = Members(estate)
    path = estate.parent / "progress.json"
    progress = Progress.open(path, ["cyrus-1"], switch_back=False, fresh=False)
    progress.state = {"cyrus-1": upgrade_module.PairProgress("store-1b", "store-1a")}  # recorded the other way round
    with pytest.raises(UpgradeError, match="store-1a is live: a live member is never upgraded in place"):
        run(members, progress)
    assert members.done == []


def test_the_command_refuses_an_unknown_pair_and_a_budget_of_nothing(estate: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hermes.cli import app

    rendered = tmp_path / "rendered"
    cli = CliRunner()
    assert cli.invoke(app, ["render", "--estate", str(estate), "--output", str(rendered)]).exit_code == 0
    common = ["--estate", str(estate), "--output", str(rendered), "--lab"]
    unknown = cli.invoke(app, ["store", "upgrade", "cyrus-9", *common])
    assert unknown.exit_code == 2 and "no store pair cyrus-9 in estate lab (pairs: cyrus-1, cyrus-2)" in unknown.output
    nothing = cli.invoke(app, ["store", "upgrade", "cyrus-1", "--retries", "0", *common])
    assert nothing.exit_code == 2 and "--retries must be at least 1" in nothing.output
    # A stale render is refused before anything else.
    (rendered / "hosts.yml").write_text("stale\n")
    stale = cli.invoke(app, ["store", "upgrade", "cyrus-1", *common])
    assert stale.exit_code != 0 and "is stale" in stale.output


def test_after_an_upgrade_the_gate_wants_replication_caught_up_not_just_within_the_limit(
    estate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[float] = []

    def unhealthy(runner: object, loaded: LoadedEstate, pair: str, max_lag: float) -> str | None:
        asked.append(max_lag)
        return None

    monkeypatch.setattr(upgrade_module, "unhealthy", unhealthy)
    progress = Progress.open(estate.parent / "progress.json", ["cyrus-1"], switch_back=False, fresh=False)
    run(Members(estate), progress, budget=Budget(3, 5.0, max_lag=30.0))
    # gate, caught up (after each member's upgrade), gate after
    assert asked == [30.0, upgrade_module.CAUGHT_UP_LAG, upgrade_module.CAUGHT_UP_LAG, 30.0]
