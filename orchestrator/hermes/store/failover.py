"""An unplanned failover of a store pair: the live member is lost, and the spare becomes the
live member with what it has.

The steps, each timed in the report (:class:`~hermes.store.operation.Step`):

1. **gate** — the live member does not answer, or answers with Cyrus down (a running Cyrus
   is a switchover's job: failing over from it would make two masters); the spare answers
   with Cyrus running; neither member is fenced already. Else nothing is done;
2. **fence** — the old live member cannot come back as a second master
   (:mod:`hermes.store.fence`);
3. **hold** — :func:`hermes.store.hold.hold`: mail waits on the MX queues (the MX hosts
   were deferring it already: the member does not answer), logins get a temporary failure;
4. **flip** — the estate file records the spare as live and the old member as fenced, the
   inventory is rendered again, and the ``store_live`` tasks run on the spare, the backup
   server, the MX hosts and the proxies (as in a switchover; never the provisioning). The
   live member replicates to the backup server only; the backup server takes replication
   from it alone;
5. **resync** — every user with a mailbox on which the new live member and the backup
   server disagree is copied to the backup server (``sync_client -u``): the old member may
   have replicated to one and not yet to the other. What only the backup server has, Cyrus
   copies back into the live copy; this runs while the pair is held, so no new message has
   taken those UIDs. Then the two must agree;
6. **release** — logins reach the new live member (the held time ends here); each MX
   delivers what it queued;
7. **missing** — what the MX hosts' logs say they delivered to the old member and the live
   copy lacks (:mod:`hermes.store.missing`): on the fenced member's disk only, until it is
   reattached;
8. **confirm** — as a switchover's: the ``mail[a-z]`` names move, nothing else should.

A failure before the flip releases the pair (the old member stays fenced: it had failed). A
failure from the flip on leaves the pair held and says so; docs/store.md, Failover, says what
to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from hermes.errors import HermesError, StoreError, UsageError
from hermes.loader import LoadedEstate
from hermes.store.check import Agreement, PairSpec, PairStatus, check_pairs, pair_specs, wait_in_sync
from hermes.store.fence import Fencer
from hermes.store.hold import ROOT, hold_targets
from hermes.store.missing import CYRUS_BIN, Delivery, lost_on
from hermes.store.operation import CYRUS_UNIT, Deploy, FlipPlan, OperationError, PairOperation, Step, Steps
from hermes.store.runner import CommandRunner
from hermes.topology import BACKUP_CHANNEL


class FailoverError(OperationError):
    runbook = "Failover"


@dataclass
class Failover(PairOperation):
    """The failover's report: a switchover's, and what may be missing."""

    missing: list[Delivery] = field(default_factory=list)

    def outcome(self) -> dict[str, object]:
        return {**super().outcome(), "missing": [asdict(d) for d in self.missing]}


def failover_plan(loaded: LoadedEstate, pair: str) -> FlipPlan:
    [spec] = pair_specs(loaded, [pair])  # refuses a pair the estate does not have
    if spec.fenced is not None:
        raise UsageError(f"store pair {pair}'s spare {spec.fenced} is fenced: there is nothing to fail over to")
    services = loaded.estate.services
    hosts = {spec.spare, spec.backup, *services.mx.hosts, *services.proxy.hosts}  # not the lost member
    everywhere = tuple(sorted(hosts | set(services.dns.hosts)))
    return FlipPlan("failover", pair, spec.live, spec.spare, tuple(sorted(hosts)), everywhere, fenced=spec.live)


def cyrus_state(runner: CommandRunner, host: str) -> str | None:
    """``systemctl is-active`` of Cyrus on ``host`` (active, inactive, failed, ...), or None when the host does not answer."""
    try:
        answer = runner.run(host, ["sh", "-c", f"systemctl is-active {CYRUS_UNIT} || true"], user=ROOT)
    except StoreError:
        return None
    return answer.strip() or "unknown"


def _gate(runner: CommandRunner, plan: FlipPlan) -> str:
    """Why the pair may fail over (else FailoverError): the live member is lost, the spare serves."""
    lost = cyrus_state(runner, plan.old_live)
    if lost not in (None, "inactive", "failed"):
        raise FailoverError(
            f"{plan.old_live} answers with Cyrus {lost}: a failover would make a second master; "
            f"stop it first, or use `hermesctl store switchover {plan.pair}`",
            (),
            held=False,
        )
    spare = cyrus_state(runner, plan.new_live)
    if spare != "active":
        why = "does not answer" if spare is None else f"has Cyrus {spare}"
        raise FailoverError(f"the spare {plan.new_live} {why}: there is nothing to promote", (), held=False)
    return f"{plan.old_live} {'does not answer' if lost is None else 'has Cyrus ' + lost}; {plan.new_live} serves"


def _users_to_resync(status: PairStatus) -> list[str]:
    """The users owning a mailbox on which the live member and the backup server disagree."""
    users = set()
    for channel in status.channels:
        for m in channel.mailboxes:
            if m.agreement is not Agreement.AGREE and m.mailbox.startswith("user."):
                users.add(m.mailbox.split(".")[1])
    return sorted(users)


def fail_over(
    loaded: LoadedEstate,
    pair: str,
    runner: CommandRunner,
    deploy: Deploy,
    fencer: Fencer,
    *,
    sync_timeout: float = 120.0,
    on_step: Callable[[Step], None] = lambda _: None,
) -> Failover:
    """Fail ``pair`` over to its spare (the module's steps) with ``deploy`` and ``fencer``."""
    plan = failover_plan(loaded, pair)
    report = Failover(plan)
    targets = hold_targets(loaded)
    steps = Steps(report, runner, targets, FailoverError, on_step)  # the old member stays fenced: it had failed

    started = time.monotonic()
    steps.done("gate", started, _gate(runner, plan))
    started = time.monotonic()
    try:
        steps.done("fence", started, fencer.fence(plan.old_live, CYRUS_UNIT))
    except HermesError as error:
        raise steps.stopped(f"{plan.old_live} could not be fenced: {error}", held=False) from error

    steps.hold()
    steps.flip(deploy, f"{plan.new_live} live, {plan.old_live} fenced")
    [spec] = pair_specs(loaded, [pair])
    live = [PairSpec(spec.name, plan.new_live, plan.old_live, spec.backup, spec.owners, fenced=plan.old_live)]
    try:
        started = time.monotonic()
        steps.done("resync", started, _resync(runner, live, sync_timeout))
        started = time.monotonic()
        lifted = steps.lift()
    except (HermesError, KeyboardInterrupt) as error:
        raise steps.stopped(f"after the flip: {error or 'interrupted'}", held=True) from None
    steps.drain(started, lifted)

    started = time.monotonic()
    try:
        report.missing = lost_on(
            runner,
            mx_hosts=targets.mx_hosts,
            old_address=str(loaded.addresses[plan.old_live]),
            live=plan.new_live,
            users=targets.users[pair],
            mail_domain=targets.mail_domain,
        )
    except HermesError as error:
        raise steps.stopped(f"{plan.new_live} is live, but the MX logs could not be read: {error}", held=False) from None
    steps.done("missing", started, f"{len(report.missing)} delivery(ies) to {plan.old_live} not in the live copy")
    steps.confirm(deploy)
    return report


def _resync(runner: CommandRunner, live: list[PairSpec], timeout: float) -> str:
    """Copy every user on whom the live member and the backup server disagree; then they must agree."""
    [spec] = live
    [before] = check_pairs(live, runner)
    users = _users_to_resync(before)
    if users:
        runner.run(spec.live, [f"{CYRUS_BIN}/sync_client", "-n", BACKUP_CHANNEL, "-u", *users])
    if not wait_in_sync(live, runner, timeout):
        raise StoreError(f"{spec.live} and {spec.backup} still disagree {timeout:.0f} s after the resync of {len(users)} user(s)")
    return f"{len(users)} user(s) copied to {spec.backup}; {spec.live} and {spec.backup} agree"
