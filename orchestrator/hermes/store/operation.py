"""What the pair operations (switchover, failover) share: their timed steps, the hosts a flip
touches, the deploy they are handed, the estate file edit that records who is live (and who is
fenced), and the error that says whether the pair is still held.

The flip and the confirming deploy are the same in both: while the pair is held, only the
roles' tasks tagged ``store_live`` run (:data:`FLIP_TAGS`: the members' cyrus.conf,
imapd.conf, hosts.allow and Cyrus's restart, the backup server's hosts.allow, the MX hosts'
store-pairs map, the proxies' maps), and nothing tagged ``always``: the hosts' prechecks ran
before the hold, the confirming deploy validates the roles' arguments, and those tasks need
no facts. After the release, :data:`CONFIRM_TAGS` run every part of those roles a live member
touches, on the DNS hosts too (the ``mail[a-z]`` names: clients cache them for their TTL
whenever they change, so they wait for no one); it proves the flip left nothing behind. The
provisioning of the live member (mailboxes, quotas) never runs: a promoted member creates no
mailbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ruamel.yaml import YAML

from hermes.errors import ExitCode, HermesError, UsageError
from hermes.loader import load_estate
from hermes.store.hold import HoldTargets, HostHold, drain, hold, lift, release
from hermes.store.runner import CommandRunner

CYRUS_UNIT = "cyrus-imapd.service"
FLIP_TAGS = ("store_live",)
PRECHECK_TAGS = ("precheck",)
FLIP_SKIP_TAGS = ("always",)
CONFIRM_TAGS = ("cyrus_store_configure", "cyrus_store_run", "mta_configure", "imap_proxy_configure", "dns_configure", "dns_run")
PROVISION_TAG = "cyrus_store_provision"


@dataclass(frozen=True)
class FlipPlan:
    """What an operation on one pair touches."""

    operation: str  # "switchover" or "failover"
    pair: str
    old_live: str
    new_live: str
    flip_hosts: tuple[str, ...]  # the flip's limit: the pair's reachable members, its backup server, the MX hosts, the proxies
    hosts: tuple[str, ...]  # the confirming deploy's: those and the DNS hosts
    fenced: str | None = None  # the member the estate file records as fenced afterwards

    @property
    def flip_limit(self) -> str:
        return ",".join(self.flip_hosts)

    @property
    def limit(self) -> str:
        return ",".join(self.hosts)


# deploy(plan, limit, tags, skip_tags): record the plan's members in the estate file, render,
# then run site.yml on the hosts of the limit; how many tasks it changed on each host.
Deploy = Callable[[FlipPlan, str, tuple[str, ...], tuple[str, ...]], Mapping[str, int]]


class OperationError(HermesError):
    """A pair operation stopped; ``steps`` says how far it went and ``held`` whether the pair still is."""

    exit_code = ExitCode.OUT_OF_SYNC
    runbook: ClassVar[str] = "Store operations"

    def __init__(self, message: str, steps: Sequence[Step], *, held: bool) -> None:
        self.steps = tuple(steps)
        self.held = held
        state = "the pair is still HELD: mail queued, logins refused" if held else "the pair is not held"
        super().__init__(f"{message} ({state}; see docs/store.md, {self.runbook})")


class DeployNotStarted(HermesError):
    """The flip's deploy stopped before Ansible touched a host (and put the estate file back)."""


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class PairOperation:
    """An operation's report, filled in as it goes."""

    plan: FlipPlan
    steps: list[Step] = field(default_factory=list)
    released: list[HostHold] = field(default_factory=list)
    held_seconds: float = 0.0
    # Tasks the confirming deploy changed on the flip's hosts: 0 when the flip did everything.
    confirm_changed: int = 0

    @property
    def queued(self) -> int:
        return sum(r.queued_before or 0 for r in self.released)

    @property
    def drained(self) -> list[dict[str, object]]:
        """Each MX's queue for the pair at the release: before and after its forced run, and how long that took."""
        fields = ("host", "queued_before", "queued_after", "flush_seconds", "flush_error")
        return [{f: getattr(r, f) for f in fields} for r in self.released if r.service == "mx"]

    @property
    def waiting(self) -> bool:
        """Mail for the pair still on an MX's queue after the release (delivered at its retry)."""
        return any(r.waiting for r in self.released)

    def outcome(self) -> dict[str, object]:
        """The figures of a finished operation, for ``--json`` and its record."""
        return {
            "result": "done",
            "held": False,
            "held_seconds": self.held_seconds,
            "confirm_changed": self.confirm_changed,
            "queued_messages": self.queued,
            "drained": self.drained,
            "mail_waiting": self.waiting,
        }


def document(plan: FlipPlan, steps: Sequence[Step], **outcome: object) -> dict[str, object]:
    """What ``--json`` prints and the operation's record keeps: names, times and counts only."""
    return {
        "operation": plan.operation,
        "pair": plan.pair,
        "live": plan.new_live,
        "spare": plan.old_live,
        "fenced": plan.fenced,
        "deployed_to": list(plan.hosts),
        "steps": [{"step": s.name, "seconds": s.seconds, "detail": s.detail} for s in steps],
        **outcome,
    }


def record_pair(estate: Path, pair: str, *, live: str, fenced: str | None) -> None:
    """Write ``pair``'s live member, and its fenced member (or none), in the estate file. Only
    those lines change (a YAML dump would lose the file's comments and layout); the file is
    loaded again, and put back as it was if that fails."""
    original = estate.read_text(encoding="utf-8")
    data = YAML().load(original)  # round-trip: keeps each key's and value's line and column
    [entry] = [p for p in data["services"]["store_pairs"] if p["name"] == pair]
    if entry.fa.flow_style():
        raise UsageError(f"{estate}: store pair {pair} is in flow style ({{...}}); write it as a block for hermesctl to edit it")
    line, column = entry.lc.value("live")
    lines = original.splitlines(keepends=True)
    text = lines[line]
    quote = text[column] if text[column] in "'\"" else ""
    old = f"{quote}{entry['live']}{quote}"
    if not text.startswith(old, column):
        raise UsageError(f"{estate}: cannot find store pair {pair}'s live member where YAML puts it (line {line + 1})")
    lines[line] = text[:column] + f"{quote}{live}{quote}" + text[column + len(old) :]
    key_line, key_column = entry.lc.key("live")
    fenced_line = [" " * key_column + f"fenced: {fenced}\n"] if fenced is not None else []
    if "fenced" in entry:
        at = entry.lc.key("fenced")[0]
        lines[at : at + 1] = fenced_line
    else:
        lines[key_line + 1 : key_line + 1] = fenced_line
    estate.write_text("".join(lines), encoding="utf-8")
    try:
        load_estate(estate)
    except HermesError:
        estate.write_text(original, encoding="utf-8")
        raise


def _nothing() -> None:
    """Nothing to undo."""


@dataclass
class Steps:
    """An operation under way: it records each step in its report, holds and releases the pair,
    runs the flip and the confirming deploy, and backs out of what it can."""

    report: PairOperation
    runner: CommandRunner
    targets: HoldTargets
    error: type[OperationError]
    on_step: Callable[[Step], None]
    undo: Callable[[], object] = _nothing  # before the flip, backing out does this, then releases the pair
    held_at: float = 0.0

    @property
    def plan(self) -> FlipPlan:
        return self.report.plan

    def done(self, name: str, started: float, detail: str) -> None:
        step = Step(name, time.monotonic() - started, detail)
        self.report.steps.append(step)
        self.on_step(step)

    def stopped(self, message: str, *, held: bool) -> OperationError:
        return self.error(message, self.report.steps, held=held)

    def back_out(self, message: str) -> OperationError:
        """Undo what came before the flip, and release the pair."""
        try:
            self.undo()
            self.report.released = release(self.runner, self.targets, self.plan.pair)
        except HermesError as error:
            return self.stopped(f"{message}; backing out failed too: {error}", held=True)
        return self.stopped(message, held=False)

    def hold(self) -> None:
        """Hold the pair: the held time starts here."""
        pair = self.plan.pair
        self.held_at = started = time.monotonic()
        try:
            hold(self.runner, self.targets, pair)
        except (HermesError, KeyboardInterrupt) as error:
            raise self.back_out(f"{pair}: the hold failed: {error or 'interrupted'}") from None
        users, targets = len(self.targets.users[pair]), self.targets
        self.done("hold", started, f"{users} users held on {len(targets.mx_hosts)} MX, {len(targets.proxy_hosts)} proxies")

    def flip(self, deploy: Deploy, detail: str) -> None:
        """The deploy that records the plan's members; once Ansible has started, the pair stays held."""
        plan, started = self.plan, time.monotonic()
        try:
            deploy(plan, plan.flip_limit, FLIP_TAGS, FLIP_SKIP_TAGS)
        except DeployNotStarted as error:
            raise self.back_out(f"the flip's deploy could not start: {error}") from error
        except HermesError as error:
            raise self.stopped(f"the flip's deploy failed: {error}", held=True) from error
        except KeyboardInterrupt:
            raise self.stopped("interrupted during the flip's deploy", held=True) from None
        self.done("flip", started, f"{detail}; deployed to {plan.flip_limit}")

    def lift(self) -> list[HostHold]:
        """Lift the hold everywhere: the held time ends here."""
        lifted = lift(self.runner, self.targets, self.plan.pair)
        self.report.held_seconds = time.monotonic() - self.held_at
        return lifted

    def drain(self, started: float, lifted: Sequence[HostHold]) -> None:
        """Each MX delivers what the hold kept, timed per MX."""
        report = self.report
        report.released = drain(self.runner, self.targets, self.plan.pair, lifted)
        self.done("release", started, released(report.released, report.queued))

    def confirm(self, deploy: Deploy) -> None:
        """The confirming deploy, once the pair is released; what it changed."""
        plan, report, started = self.plan, self.report, time.monotonic()
        try:
            changed = deploy(plan, plan.limit, CONFIRM_TAGS, (PROVISION_TAG,))
        except (HermesError, KeyboardInterrupt) as error:
            why = str(error) or "interrupted"
            raise self.stopped(f"{plan.new_live} is live, but the confirming deploy failed: {why}", held=False) from None
        report.confirm_changed = left = sum(n for host, n in changed.items() if host in plan.flip_hosts)
        names = sum(n for host, n in changed.items() if host not in plan.flip_hosts)
        detail = f"{left} change(s) the flip had left behind" if left else "the flip was complete"
        self.done("confirm", started, f"{detail}; {names} change(s) for the mail[a-z] names")


def released(results: Sequence[HostHold], queued: int) -> str:
    """The release step's detail: what the MX hosts delivered, what is still queued, what failed."""
    still = sum(r.queued_after or 0 for r in results)
    failed = [f"{r.host}: {r.flush_error}" for r in results if r.flush_error is not None]
    detail = f"{queued} queued message(s) delivered" + (f", {still} still queued" if still else "")
    return detail + "".join(f"; flush failed on {f}" for f in failed)
