"""Rolling store upgrades: one pair at a time, only ever the spare upgraded, mail never stopped
for longer than a switchover's hold.

For each pair, in the order asked (each step timed in the report):

1. **gate** — the pair is healthy: no member fenced, the pair held nowhere, Cyrus active on
   both members, replication as a switchover's gate wants it (at most ``max_lag`` seconds
   behind, no mailbox it cannot settle; under load a pair is never exactly in sync); asked
   again every ``delay`` seconds, ``retries`` times;
2. **upgrade <spare>** — ``playbooks/rolling_store_upgrade.yml`` on the spare alone (its
   packages brought up to date; the role refuses a live member), then the spare rebooted when
   asked (``reboot``) or when the upgrade says it needs one (``/run/reboot-required``);
3. **caught up** — the gate again, replication at most :data:`CAUGHT_UP_LAG` seconds behind:
   the spare is back and has what the live member took meanwhile;
4. **switchover** — :func:`hermes.store.switchover.switch`, through the CLI's plumbing (the
   estate file and render record the new live member);
5. **upgrade <old live>** and **caught up** — the same on the old live member, now the spare;
6. **switch back** (when asked) — a switchover to the first live member again;
7. **gate after** — the pair healthy; the pair is done.

A failure stops the run. Only a spare is ever touched outside a switchover, and a switchover
that fails backs out or stays held with its runbook (docs/store.md), so the pair is left
serving from its live member. Each pair's progress is kept in a file beside the operations'
records; the next run with the same pairs resumes there (a pair done is skipped, a member
upgraded is not upgraded again), and a finished run removes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hermes.errors import ExitCode, HermesError, UsageError
from hermes.loader import LoadedEstate
from hermes.store.check import check_pairs, pair_specs
from hermes.store.failover import cyrus_state
from hermes.store.hold import hold_targets, holding
from hermes.store.operation import PairOperation, Step
from hermes.store.runner import CommandRunner
from hermes.store.switchover import replication_problems

# After an upgrade the gate wants replication this close (seconds): caught up, not merely
# within a switchover's limit, so the switchover's hold does not wait for it.
CAUGHT_UP_LAG = 5.0
REBOOT_REQUIRED = "/run/reboot-required"  # Debian's flag file (update-notifier-common, unattended-upgrades)
PLAYBOOK = "rolling_store_upgrade.yml"


class UpgradeError(HermesError):
    """The rolling upgrade stopped; ``steps`` says how far it went."""

    exit_code = ExitCode.OUT_OF_SYNC

    def __init__(self, message: str, steps: Sequence[Step]) -> None:
        super().__init__(f"{message} (the pair serves from its live member; docs/store.md, Rolling upgrade)")
        self.steps = tuple(steps)


@dataclass(frozen=True)
class Budget:
    """How long a health gate waits: ``retries`` checks, ``delay`` seconds apart, for replication
    at most ``max_lag`` seconds behind."""

    retries: int
    delay: float
    max_lag: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 1 or self.delay < 0:
            raise UsageError(f"--retries must be at least 1 and --delay not negative (got {self.retries}, {self.delay:g} s)")


class Members(Protocol):
    """What the upgrade does to the estate, provided by the CLI (deploy's plumbing) or by a test."""

    def load(self) -> LoadedEstate:
        """The estate as its file says now (a switchover changes it)."""
        ...

    def upgrade(self, host: str) -> str:
        """Run the upgrade playbook on ``host`` alone; what it did."""
        ...

    def reboot(self, host: str) -> str:
        """Restart ``host`` and wait until it answers again; what was done."""
        ...

    def switchover(self, pair: str) -> PairOperation:
        """Switch ``pair`` over (its spare becomes live)."""
        ...


@dataclass
class PairProgress:
    """One pair's progress: who was live when its upgrade began, and which members are upgraded."""

    first_live: str
    first_spare: str
    upgraded: list[str] = field(default_factory=list)
    done: bool = False


@dataclass
class Progress:
    """The run's progress, kept in ``path`` after every step that changes something."""

    path: Path
    pairs: list[str]
    switch_back: bool
    state: dict[str, PairProgress] = field(default_factory=dict)
    resumed: bool = False

    @classmethod
    def open(cls, path: Path, pairs: Sequence[str], *, switch_back: bool, fresh: bool) -> Progress:
        """The progress of the unfinished run with these pairs, or a new one."""
        if path.is_file() and not fresh:
            try:
                kept = json.loads(path.read_text(encoding="utf-8"))
                state = {name: PairProgress(**entry) for name, entry in kept["state"].items()}
            except (ValueError, KeyError, TypeError) as error:
                raise UsageError(f"{path}: unreadable ({error}); remove it, or run with --fresh") from None
            if kept["pairs"] != list(pairs) or kept["switch_back"] != switch_back:
                raise UsageError(
                    f"{path}: an unfinished upgrade of {', '.join(kept['pairs'])} "
                    f"({'with' if kept['switch_back'] else 'without'} --switch-back) is there; "
                    "run it again as it was to resume it, or with --fresh to start over"
                )
            return cls(path, list(pairs), switch_back, state, resumed=True)
        return cls(path, list(pairs), switch_back)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {name: vars(entry) for name, entry in self.state.items()}
        document = {"pairs": self.pairs, "switch_back": self.switch_back, "state": state}
        self.path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Upgrade:
    """The rolling upgrade's report."""

    steps: list[Step] = field(default_factory=list)
    switchovers: list[PairOperation] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # pairs a resumed run found done
    resumed: bool = False


def unhealthy(runner: CommandRunner, loaded: LoadedEstate, pair: str, max_lag: float) -> str | None:
    """Why ``pair`` is not healthy (a member fenced, the pair held, Cyrus not active on a member,
    replication more than ``max_lag`` seconds behind or a mailbox it cannot settle: a
    switchover's gate), or None."""
    [spec] = pair_specs(loaded, [pair])
    if spec.fenced is not None:
        return f"{spec.fenced} is fenced: reattach it first"
    held = holding(runner, hold_targets(loaded), pair)
    if held:
        return f"held on {', '.join(held)} (a switchover stopped? its runbook says when to release it)"
    for host in (spec.live, spec.spare):
        state = cyrus_state(runner, host)
        if state != "active":
            return f"Cyrus on {host} is {state or 'unreachable'}"
    [status] = check_pairs([spec], runner)
    return replication_problems(status, max_lag) or None


def rolling_upgrade(
    members: Members,
    runner: CommandRunner,
    progress: Progress,
    budget: Budget,
    *,
    reboot: bool = False,
    on_step: Callable[[Step], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Upgrade:
    """Upgrade ``progress.pairs`` one at a time (the module's steps)."""
    run = _Run(members, runner, progress, budget, reboot, on_step, sleep, Upgrade(resumed=progress.resumed))
    for pair in progress.pairs:
        run.pair(pair)
    progress.finish()
    return run.report


@dataclass
class _Run:
    members: Members
    runner: CommandRunner
    progress: Progress
    budget: Budget
    reboot: bool
    on_step: Callable[[Step], None]
    sleep: Callable[[float], None]
    report: Upgrade

    def pair(self, pair: str) -> None:
        if pair not in self.progress.state:
            [spec] = pair_specs(self.members.load(), [pair])
            self.progress.state[pair] = PairProgress(spec.live, spec.spare)
            self.progress.save()
        state = self.progress.state[pair]
        if state.done:
            self.report.skipped.append(pair)
            return
        self.gate(pair, "gate")
        if state.first_spare not in state.upgraded:
            self.upgrade(pair, state.first_spare)
            self.gate(pair, "caught up", min(self.budget.max_lag, CAUGHT_UP_LAG))
        if state.first_live not in state.upgraded:
            if self.live(pair) != state.first_spare:
                self.switchover(pair, "switchover")
            self.upgrade(pair, state.first_live)
            self.gate(pair, "caught up", min(self.budget.max_lag, CAUGHT_UP_LAG))
        if self.progress.switch_back and self.live(pair) != state.first_live:
            self.switchover(pair, "switch back")
        self.gate(pair, "gate after")
        state.done = True
        self.progress.save()

    def done(self, name: str, started: float, detail: str) -> None:
        step = Step(name, time.monotonic() - started, detail)
        self.report.steps.append(step)
        self.on_step(step)

    def stopped(self, message: str) -> UpgradeError:
        return UpgradeError(message, self.report.steps)

    def live(self, pair: str) -> str:
        [spec] = pair_specs(self.members.load(), [pair])
        return spec.live

    def gate(self, pair: str, name: str, max_lag: float | None = None) -> None:
        started, budget = time.monotonic(), self.budget
        for attempt in range(1, budget.retries + 1):
            why = unhealthy(self.runner, self.members.load(), pair, budget.max_lag if max_lag is None else max_lag)
            if why is None:
                self.done(f"{pair}: {name}", started, f"healthy (check {attempt} of {budget.retries})")
                return
            if attempt < budget.retries:
                self.sleep(budget.delay)
        raise self.stopped(f"{pair}: {name}: {why} after {budget.retries} checks {budget.delay:g} s apart")

    def upgrade(self, pair: str, host: str) -> None:
        if self.live(pair) == host:
            raise self.stopped(f"{pair}: {host} is live: a live member is never upgraded in place")
        started = time.monotonic()
        try:
            detail = self.members.upgrade(host)
            needed = self.runner.run(host, ["sh", "-c", f"test -e {REBOOT_REQUIRED} && echo yes || true"]).strip() == "yes"
            if self.reboot or needed:
                detail += "; " + self.members.reboot(host) + (" (the upgrade asked for it)" if needed else "")
        except HermesError as error:
            raise self.stopped(f"{pair}: upgrading {host}: {error}") from None
        self.progress.state[pair].upgraded.append(host)
        self.progress.save()
        self.done(f"{pair}: upgrade {host}", started, detail)

    def switchover(self, pair: str, name: str) -> None:
        started = time.monotonic()
        try:
            switched = self.members.switchover(pair)
        except HermesError as error:
            raise self.stopped(f"{pair}: {name}: {error}") from None
        self.report.switchovers.append(switched)
        self.done(f"{pair}: {name}", started, f"{switched.plan.new_live} live, held {switched.held_seconds:.1f} s")
