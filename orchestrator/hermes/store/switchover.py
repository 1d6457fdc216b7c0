"""A planned switchover of a store pair: its spare becomes the live member and the live member
the spare, with every message kept and no mailbox created on the way.

The steps, each timed in the report (:class:`Step`):

1. **gate** — the spare is at most ``max_lag`` seconds behind and no mailbox is split (a
   different unique id or UIDVALIDITY on the two ends, or one only on a receiver), else
   nothing is done;
2. **hold** — :func:`hermes.store.hold.hold`: mail waits on the MX queues, logins get a
   temporary failure, open sessions end;
3. **drain** — the pair is in sync: what was delivered before the hold has replicated;
4. **stop** — Cyrus stops on the live member; its snapshot, read from disk, must show
   nothing pending and every mailbox agreeing with the spare and the backup server;
5. **flip** — the estate file records the new live member (:func:`record_live`), the
   inventory is rendered again, and the deploy runs on the pair, its backup server, the MX
   hosts and the proxies, only the tasks that say which member is live (:data:`FLIP_TAGS`:
   the members' Cyrus configuration and restart, whom the backup server takes replication
   from, the maps); the provisioning is not among them, so the promoted member creates no
   mailbox;
6. **verify** — the pair is in sync in its new direction;
7. **release** — logins reach the new live member (the pair's held time ends here); each
   MX delivers what it queued (the drain, timed per MX);
8. **confirm** — after the release, the deploy of the same hosts and the DNS hosts with
   every part a live member touches (:data:`CONFIRM_TAGS`, still without the provisioning):
   the ``mail[a-z]`` names change here, and nothing else should; the report says if it did.

A failure before the flip restarts Cyrus on the old live member and releases the pair: the
estate is as it was. A failure from the flip on leaves the pair held (mail queued, logins
refused, nothing lost) and says so; the runbook in docs/store.md says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from hermes.errors import ExitCode, HermesError, UsageError
from hermes.loader import LoadedEstate, load_estate
from hermes.store.check import Agreement, PairSpec, PairStatus, check_pairs, pair_specs
from hermes.store.hold import ROOT, HoldTargets, HostHold, drain, hold, hold_targets, lift, release
from hermes.store.runner import CommandRunner

CYRUS_UNIT = "cyrus-imapd.service"
# While the pair is held, only the roles' tasks tagged store_live run: what says which member
# is live (the members' cyrus.conf, imapd.conf, hosts.allow and Cyrus's restart, the backup
# server's hosts.allow, the MX hosts' store-pairs map, the proxies' maps). Nothing tagged always: the host checks ran at the gate,
# the confirming deploy validates the roles' arguments, and those tasks need no facts.
FLIP_TAGS = ("store_live",)
PRECHECK_TAGS = ("precheck",)
FLIP_SKIP_TAGS = ("always",)
# After the release, every part of those roles a live member touches, on the DNS hosts too
# (the mail[a-z] names: clients cache them for their TTL whenever they change, so they wait
# for no one). It proves the flip left nothing else behind. The provisioning of the live
# member (mailboxes, quotas) is never run.
CONFIRM_TAGS = ("cyrus_store_configure", "cyrus_store_run", "mta_configure", "imap_proxy_configure", "dns_configure", "dns_run")
PROVISION_TAG = "cyrus_store_provision"

# deploy(plan, limit, tags, skip_tags): render, then run site.yml on the hosts of the limit;
# how many tasks it changed on each host.
Deploy = Callable[["SwitchoverPlan", str, tuple[str, ...], tuple[str, ...]], Mapping[str, int]]


class SwitchoverError(HermesError):
    """A switchover stopped; ``steps`` says how far it went and ``held`` whether the pair still is."""

    exit_code = ExitCode.OUT_OF_SYNC

    def __init__(self, message: str, steps: Sequence[Step], *, held: bool) -> None:
        self.steps = tuple(steps)
        self.held = held
        state = "the pair is still HELD: mail queued, logins refused" if held else "the pair is not held"
        super().__init__(f"{message} ({state}; see docs/store.md, Switchover)")


class DeployNotStarted(HermesError):
    """The flip's deploy stopped before Ansible touched a host (and put the estate file back)."""


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class SwitchoverPlan:
    """What a switchover of one pair touches."""

    pair: str
    old_live: str
    new_live: str
    flip_hosts: tuple[str, ...]  # the flip's limit: the pair, its backup server, the MX hosts, the proxies
    hosts: tuple[str, ...]  # the confirming deploy's: those and the DNS hosts

    @property
    def flip_limit(self) -> str:
        return ",".join(self.flip_hosts)

    @property
    def limit(self) -> str:
        return ",".join(self.hosts)


@dataclass
class Switchover:
    """The switchover's report, filled in as it goes."""

    plan: SwitchoverPlan
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


def document(plan: SwitchoverPlan, steps: Sequence[Step], **outcome: object) -> dict[str, object]:
    """What ``--json`` prints and the operation's record keeps: names, times and counts only."""
    return {
        "operation": "switchover",
        "pair": plan.pair,
        "live": plan.new_live,
        "spare": plan.old_live,
        "deployed_to": list(plan.hosts),
        "steps": [{"step": s.name, "seconds": s.seconds, "detail": s.detail} for s in steps],
        **outcome,
    }


def switchover_plan(loaded: LoadedEstate, pair: str) -> SwitchoverPlan:
    [spec] = pair_specs(loaded, [pair])  # refuses a pair the estate does not have
    services = loaded.estate.services
    flip = {spec.live, spec.spare, spec.backup, *services.mx.hosts, *services.proxy.hosts}
    return SwitchoverPlan(pair, spec.live, spec.spare, tuple(sorted(flip)), tuple(sorted(flip | set(services.dns.hosts))))


def record_live(estate: Path, pair: str, member: str) -> None:
    """Write ``member`` as ``pair``'s live member in the estate file. Only that value changes
    (a YAML dump would lose the file's comments and layout); the file is loaded again, and
    put back as it was if that fails."""
    original = estate.read_text(encoding="utf-8")
    data = YAML().load(original)  # round-trip: keeps each value's line and column
    [entry] = [p for p in data["services"]["store_pairs"] if p["name"] == pair]
    line, column = entry.lc.value("live")
    lines = original.splitlines(keepends=True)
    text = lines[line]
    quote = text[column] if text[column] in "'\"" else ""
    old = f"{quote}{entry['live']}{quote}"
    if not text.startswith(old, column):
        raise UsageError(f"{estate}: cannot find store pair {pair}'s live member where YAML puts it (line {line + 1})")
    lines[line] = text[:column] + f"{quote}{member}{quote}" + text[column + len(old) :]
    estate.write_text("".join(lines), encoding="utf-8")
    try:
        load_estate(estate)
    except HermesError:
        estate.write_text(original, encoding="utf-8")
        raise


def _in_sync(specs: list[PairSpec], runner: CommandRunner) -> PairStatus:
    [status] = check_pairs(specs, runner)
    return status


def _why(status: PairStatus) -> str:
    parts = []
    for channel in status.channels:
        if not channel.caught_up:
            parts.append(f"{channel.channel}: {len(channel.pending_logs)} pending sync log(s)")
        if channel.agreeing != len(channel.mailboxes):
            parts.append(f"{channel.channel}: {len(channel.mailboxes) - channel.agreeing} mailbox(es) disagree")
    return "; ".join(parts) or "in sync"


# Differences replication cannot settle: the same name created twice, independently.
_SPLIT = frozenset({"unique_id", "uidvalidity"})


def _gate(status: PairStatus, max_lag: float) -> str:
    """Why the pair cannot be switched over now ("" when it can)."""
    problems = []
    for c in status.channels:
        if c.lag_seconds > max_lag:
            problems.append(f"{c.channel}: {c.lag_seconds:.0f} s behind (at most {max_lag:.0f} s)")
        problems += [
            f"{c.channel}: {m.mailbox} {m.agreement} ({', '.join(m.differences)})"
            for m in c.mailboxes
            if m.agreement is Agreement.EXTRA or (m.agreement is Agreement.DIFFER and _SPLIT & set(m.differences))
        ]
    return "; ".join(problems)


def _pass_gate(status: PairStatus, max_lag: float, steps: Sequence[Step]) -> str:
    """What the gate saw, if the pair may be switched over; else SwitchoverError."""
    problem = _gate(status, max_lag)
    if problem:
        raise SwitchoverError(f"{status.pair} cannot be switched over: {problem}", steps, held=False)
    lag = max(c.lag_seconds for c in status.channels)
    return f"{status.pair}: {sum(len(c.mailboxes) for c in status.channels)} mailbox copies, lag {lag:.1f} s"


def _wait_in_sync(specs: list[PairSpec], runner: CommandRunner, timeout: float) -> PairStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = _in_sync(specs, runner)
        if status.in_sync or time.monotonic() > deadline:
            return status
        time.sleep(1)


def switch(
    loaded: LoadedEstate,
    pair: str,
    runner: CommandRunner,
    deploy: Deploy,
    *,
    max_lag: float = 30.0,
    drain_timeout: float = 120.0,
    on_step: Callable[[Step], None] = lambda _: None,
) -> Switchover:
    """Switch ``pair`` over (the module's steps) with ``deploy`` (:data:`Deploy`)."""
    plan = switchover_plan(loaded, pair)
    report = Switchover(plan)
    targets = hold_targets(loaded)
    specs = pair_specs(loaded, [pair])

    def step(name: str, started: float, detail: str) -> None:
        done = Step(name, time.monotonic() - started, detail)
        report.steps.append(done)
        on_step(done)

    started = time.monotonic()
    step("gate", started, _pass_gate(_in_sync(specs, runner), max_lag, report.steps))

    def back_out(message: str) -> SwitchoverError:
        """Undo what came before the flip: Cyrus on the old live member, the hold."""
        try:
            runner.run(plan.old_live, ["systemctl", "start", CYRUS_UNIT], user=ROOT)
            report.released = release(runner, targets, pair)
        except HermesError as error:
            return SwitchoverError(f"{message}; backing out failed too: {error}", report.steps, held=True)
        return SwitchoverError(message, report.steps, held=False)

    held_at = time.monotonic()
    try:
        _hold_drain_stop(runner, targets=targets, plan=plan, specs=specs, drain_timeout=drain_timeout, step=step)
    except _BackOut as stop:
        raise back_out(str(stop)) from None
    except HermesError as error:  # a host that stopped answering half-way
        raise back_out(f"{pair}: {error}") from error
    except KeyboardInterrupt:
        raise back_out("interrupted") from None

    started = time.monotonic()
    _flip(deploy, plan, report.steps, back_out)
    step("flip", started, f"{plan.new_live} live, {plan.old_live} spare; deployed to {plan.flip_limit}")

    try:
        flipped = [PairSpec(s.name, plan.new_live, plan.old_live, s.backup, s.owners) for s in specs]
        started = _verify(runner, flipped, plan.new_live, drain_timeout, step)
        lifted = lift(runner, targets, pair)
    except _BackOut as stop:
        raise SwitchoverError(str(stop), report.steps, held=True) from None
    except HermesError as error:
        raise SwitchoverError(f"after the flip: {error}", report.steps, held=True) from error
    except KeyboardInterrupt:
        raise SwitchoverError("interrupted after the flip", report.steps, held=True) from None
    # Held until the hold is lifted; delivering what it queued is the drain, timed per MX.
    report.held_seconds = time.monotonic() - held_at
    report.released = drain(runner, targets, pair, lifted)
    step("release", started, _released(report.released, report.queued))

    started = time.monotonic()
    step("confirm", started, _confirm(deploy, report))
    return report


def _confirm(deploy: Deploy, report: Switchover) -> str:
    """The confirming deploy, once the pair is released; what it changed."""
    plan = report.plan
    try:
        changed = deploy(plan, plan.limit, CONFIRM_TAGS, (PROVISION_TAG,))
    except (HermesError, KeyboardInterrupt) as error:
        why = str(error) or "interrupted"
        raise SwitchoverError(f"switched over, but the confirming deploy failed: {why}", report.steps, held=False) from None
    report.confirm_changed = left = sum(n for host, n in changed.items() if host in plan.flip_hosts)
    names = sum(n for host, n in changed.items() if host not in plan.flip_hosts)
    detail = f"{left} change(s) the flip had left behind" if left else "the flip was complete"
    return f"{detail}; {names} change(s) for the mail[a-z] names"


def _flip(
    deploy: Deploy,
    plan: SwitchoverPlan,
    steps: Sequence[Step],
    back_out: Callable[[str], SwitchoverError],
) -> None:
    """The deploy that makes the spare live; once Ansible has started, the pair stays held."""
    try:
        deploy(plan, plan.flip_limit, FLIP_TAGS, FLIP_SKIP_TAGS)
    except DeployNotStarted as error:
        raise back_out(f"the flip's deploy could not start: {error}") from error
    except HermesError as error:
        raise SwitchoverError(f"the flip's deploy failed: {error}", steps, held=True) from error
    except KeyboardInterrupt:
        raise SwitchoverError("interrupted during the flip's deploy", steps, held=True) from None


def _released(results: Sequence[HostHold], queued: int) -> str:
    still = sum(r.queued_after or 0 for r in results)
    failed = [f"{r.host}: {r.flush_error}" for r in results if r.flush_error is not None]
    detail = f"{queued} queued message(s) delivered" + (f", {still} still queued" if still else "")
    return detail + "".join(f"; flush failed on {f}" for f in failed)


class _BackOut(Exception):
    """A check that failed: before the flip, the hold and the stop are undone."""


def _verify(
    runner: CommandRunner, flipped: list[PairSpec], live: str, timeout: float, step: Callable[[str, float, str], None]
) -> float:
    """The pair in sync in its new direction; when the next step starts."""
    started = time.monotonic()
    status = _wait_in_sync(flipped, runner, timeout)
    if not status.in_sync:
        raise _BackOut(f"{live} does not replicate: {_why(status)}")
    step("verify", started, f"{live} replicates to {', '.join(c.target for c in status.channels)}")
    return time.monotonic()


def _hold_drain_stop(
    runner: CommandRunner,
    *,
    targets: HoldTargets,
    plan: SwitchoverPlan,
    specs: list[PairSpec],
    drain_timeout: float,
    step: Callable[[str, float, str], None],
) -> None:
    started = time.monotonic()
    hold(runner, targets, plan.pair)
    users = len(targets.users[plan.pair])
    step("hold", started, f"{users} users held on {len(targets.mx_hosts)} MX, {len(targets.proxy_hosts)} proxies")

    started = time.monotonic()
    status = _wait_in_sync(specs, runner, drain_timeout)
    if not status.in_sync:
        raise _BackOut(f"{plan.pair} did not catch up within {drain_timeout:.0f} s of the hold: {_why(status)}")
    step("drain", started, "replication caught up")

    started = time.monotonic()
    runner.run(plan.old_live, ["systemctl", "stop", CYRUS_UNIT], user=ROOT)
    status = _in_sync(specs, runner)
    if not status.in_sync:
        raise _BackOut(f"{plan.old_live} stopped with {_why(status)}")
    step("stop", started, f"Cyrus stopped on {plan.old_live}; nothing pending, every mailbox agrees")
