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
5. **flip** — the estate file records the new live member (:func:`~hermes.store.operation.record_pair`), the
   inventory is rendered again, and the deploy runs on the pair, its backup server, the MX
   hosts and the proxies, only the tasks that say which member is live (:data:`~hermes.store.operation.FLIP_TAGS`:
   the members' Cyrus configuration and restart, whom the backup server takes replication
   from, the maps); the provisioning is not among them, so the promoted member creates no
   mailbox;
6. **verify** — the pair is in sync in its new direction;
7. **release** — logins reach the new live member (the pair's held time ends here); each
   MX delivers what it queued (the drain, timed per MX);
8. **confirm** — after the release, the deploy of the same hosts and the DNS hosts with
   every part a live member touches (:data:`~hermes.store.operation.CONFIRM_TAGS`, still without the provisioning):
   the ``mail[a-z]`` names change here, and nothing else should; the report says if it did.

A failure before the flip restarts Cyrus on the old live member and releases the pair: the
estate is as it was. A failure from the flip on leaves the pair held (mail queued, logins
refused, nothing lost) and says so; the runbook in docs/store.md says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hermes.errors import HermesError, UsageError
from hermes.loader import LoadedEstate
from hermes.store.check import Agreement, PairSpec, PairStatus, check_pairs, pair_specs
from hermes.store.hold import ROOT, hold_targets
from hermes.store.operation import CYRUS_UNIT, Deploy, FlipPlan, OperationError, PairOperation, Step, Steps
from hermes.store.runner import CommandRunner


class SwitchoverError(OperationError):
    runbook = "Switchover"


@dataclass
class Switchover(PairOperation):
    """The switchover's report."""


def switchover_plan(loaded: LoadedEstate, pair: str) -> FlipPlan:
    [spec] = pair_specs(loaded, [pair])  # refuses a pair the estate does not have
    if spec.fenced is not None:
        raise UsageError(f"store pair {pair}'s spare {spec.fenced} is fenced: it has to be reattached first (docs/store.md)")
    services = loaded.estate.services
    hosts = {spec.live, spec.spare, spec.backup, *services.mx.hosts, *services.proxy.hosts}
    everywhere = tuple(sorted(hosts | set(services.dns.hosts)))
    return FlipPlan("switchover", pair, spec.live, spec.spare, tuple(sorted(hosts)), everywhere)


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


def replication_problems(status: PairStatus, max_lag: float) -> str:
    """Why the pair cannot be switched over now ("" when it can): a channel more than
    ``max_lag`` seconds behind, or a mailbox replication cannot settle."""
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
    problem = replication_problems(status, max_lag)
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
    specs = pair_specs(loaded, [pair])
    # Backing out before the flip restarts Cyrus on the old live member.
    steps = Steps(
        Switchover(plan),
        runner,
        hold_targets(loaded),
        SwitchoverError,
        on_step,
        undo=lambda: runner.run(plan.old_live, ["systemctl", "start", CYRUS_UNIT], user=ROOT),
    )

    started = time.monotonic()
    steps.done("gate", started, _pass_gate(_in_sync(specs, runner), max_lag, steps.report.steps))
    steps.hold()
    try:
        _drain_stop(runner, plan=plan, specs=specs, drain_timeout=drain_timeout, step=steps.done)
    except _BackOut as stop:
        raise steps.back_out(str(stop)) from None
    except HermesError as error:  # a host that stopped answering half-way
        raise steps.back_out(f"{pair}: {error}") from error
    except KeyboardInterrupt:
        raise steps.back_out("interrupted") from None

    steps.flip(deploy, f"{plan.new_live} live, {plan.old_live} spare")
    try:
        flipped = [PairSpec(s.name, plan.new_live, plan.old_live, s.backup, s.owners) for s in specs]
        started = _verify(runner, flipped, plan.new_live, drain_timeout, steps.done)
        lifted = steps.lift()
    except _BackOut as stop:
        raise steps.stopped(str(stop), held=True) from None
    except HermesError as error:
        raise steps.stopped(f"after the flip: {error}", held=True) from error
    except KeyboardInterrupt:
        raise steps.stopped("interrupted after the flip", held=True) from None
    steps.drain(started, lifted)
    steps.confirm(deploy)
    assert isinstance(steps.report, Switchover)
    return steps.report


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


def _drain_stop(
    runner: CommandRunner,
    *,
    plan: FlipPlan,
    specs: list[PairSpec],
    drain_timeout: float,
    step: Callable[[str, float, str], None],
) -> None:
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
