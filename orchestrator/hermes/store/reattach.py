"""Reattaching the member a failover fenced: it becomes the pair's spare again, without
duplicates, and the messages only it had are recovered into the live copy.

The steps, each timed in the report (:class:`~hermes.store.operation.Step`):

1. **gate** — the pair has a fenced member, and its live member serves;
2. **boot** — the fenced member is brought up (:meth:`~hermes.store.fence.Fencer.boot`);
   its fence file keeps Cyrus down;
3. **to recover** — what the MX hosts delivered to it that the live copy lacks
   (:mod:`hermes.store.missing`), for the check at the end;
4. **set aside** — its Cyrus state is moved aside and replaced by an empty one
   (:mod:`hermes.store.recover`: master wins, explicitly, without Cyrus renumbering the
   live copy), and the set-aside messages the live copy lacks are listed; Cyrus stays down;
5. **hold** — as a switchover's (the live member's Cyrus restarts in the flip);
6. **flip** — the estate file drops ``fenced``, the inventory is rendered again, and the
   ``store_live`` tasks run on both members, the backup server, the MX hosts and the
   proxies: the old member's fence file goes and its Cyrus starts, empty, with a spare's
   configuration (no LMTP: an old delivery reaching it is deferred, not refused as a user
   unknown), the live member gets its channel to it;
7. **release** — the held time ends here; each MX delivers what it queued;
8. **resync** — every user of the pair is copied from the live member to the spare
   (``sync_client -u``);
9. **recover** — the listed messages are appended to the live copy with their internal
   dates (replication takes them to the spare and the backup server); then the set-aside
   copy has nothing the live copy lacks, the pair is in sync, and every delivery of step 3
   is in the live copy, else the report says what is not;
10. **confirm** — the deploy of every host the pair touches, the provisioning left out.

The set-aside copy stays on the member (its paths are in the report) until an operator
removes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from hermes.errors import HermesError, StoreError, UsageError
from hermes.loader import LoadedEstate
from hermes.store.check import pair_specs, wait_in_sync
from hermes.store.failover import cyrus_state
from hermes.store.fence import FENCE_FILE, Fencer
from hermes.store.hold import ROOT, hold_targets
from hermes.store.missing import CYRUS_BIN, Delivery, lost_on
from hermes.store.operation import Deploy, FlipPlan, OperationError, PairOperation, Step, Steps
from hermes.store.recover import Recovery, append_recovered, find_recovery, set_aside
from hermes.store.runner import CommandRunner
from hermes.topology import REPLICA_CHANNEL, partitions


class ReattachError(OperationError):
    runbook = "Reattaching a fenced member"


@dataclass
class Reattach(PairOperation):
    """The reattach's report: what had to be recovered, and what still is not in the live copy."""

    to_recover: list[Delivery] = field(default_factory=list)
    not_recovered: list[Delivery] = field(default_factory=list)
    set_aside: tuple[str, ...] = ()  # where the member's Cyrus state was moved
    appended: int = 0  # set-aside messages appended to the live copy
    redelivered: int = 0  # set-aside messages the live copy had under another GUID (delivered again by an MX)
    no_mailbox: list[dict[str, object]] = field(default_factory=list)  # set-aside messages of mailboxes the live member lacks

    def outcome(self) -> dict[str, object]:
        return {
            **super().outcome(),
            "set_aside": list(self.set_aside),
            "appended": self.appended,
            "redelivered": self.redelivered,
            "no_mailbox": self.no_mailbox,
            "to_recover": [asdict(d) for d in self.to_recover],
            "not_recovered": [asdict(d) for d in self.not_recovered],
        }


def reattach_plan(loaded: LoadedEstate, pair: str) -> FlipPlan:
    """The plan names the fenced member as the old live member (it was, before the failover)."""
    [spec] = pair_specs(loaded, [pair])  # refuses a pair the estate does not have
    if spec.fenced is None:
        raise UsageError(f"store pair {pair} has no fenced member: there is nothing to reattach")
    services = loaded.estate.services
    hosts = {spec.live, spec.spare, spec.backup, *services.mx.hosts, *services.proxy.hosts}
    everywhere = tuple(sorted(hosts | set(services.dns.hosts)))
    return FlipPlan("reattach", pair, spec.fenced, spec.live, tuple(sorted(hosts)), everywhere)


def reattach(
    loaded: LoadedEstate,
    pair: str,
    runner: CommandRunner,
    deploy: Deploy,
    fencer: Fencer,
    *,
    admin_password: str,
    window_hours: float = 24.0,
    sync_timeout: float = 300.0,
    on_step: Callable[[Step], None] = lambda _: None,
) -> Reattach:
    """Reattach ``pair``'s fenced member as its spare (the module's steps)."""
    plan = reattach_plan(loaded, pair)
    report = Reattach(plan)
    steps = Steps(report, runner, hold_targets(loaded), ReattachError, on_step)
    spare, live = plan.old_live, plan.new_live

    started = time.monotonic()
    if cyrus_state(runner, live) != "active":
        raise steps.stopped(f"the live member {live} does not serve: reattach once it does", held=False)
    steps.done("gate", started, f"{live} serves; {spare} is fenced")
    since = int(time.time() - window_hours * 3600)
    try:
        recovery = _prepare(runner, loaded, fencer, steps, since=since, window_hours=window_hours)
    except HermesError as error:
        raise steps.stopped(str(error), held=False) from None

    steps.hold()
    steps.flip(deploy, f"{spare} unfenced, configured as {live}'s spare")
    try:
        started = time.monotonic()
        lifted = steps.lift()
    except (HermesError, KeyboardInterrupt) as error:
        raise steps.stopped(f"after the flip: {error or 'interrupted'}", held=True) from None
    steps.drain(started, lifted)

    try:
        started = time.monotonic()
        steps.done("resync", started, _resync(runner, loaded, pair))
        started = time.monotonic()
        steps.done(
            "recover",
            started,
            _recover(runner, loaded, report, recovery, since=since, admin_password=admin_password, sync_timeout=sync_timeout),
        )
    except HermesError as error:
        raise steps.stopped(f"{spare} is the spare, but: {error}", held=False) from None
    steps.confirm(deploy)
    return report


def _lost(runner: CommandRunner, loaded: LoadedEstate, plan: FlipPlan) -> list[Delivery]:
    """The deliveries to the fenced member that the live copy lacks, by the MX logs."""
    targets = hold_targets(loaded)
    return lost_on(
        runner,
        mx_hosts=targets.mx_hosts,
        old_address=str(loaded.addresses[plan.old_live]),
        live=plan.new_live,
        users=targets.users[plan.pair],
        mail_domain=targets.mail_domain,
    )


def _prepare(
    runner: CommandRunner, loaded: LoadedEstate, fencer: Fencer, steps: Steps, *, since: int, window_hours: float
) -> Recovery:
    """Boot, the deliveries to recover, set aside: what the set-aside copy has that the live copy lacks."""
    report, spare, live = steps.report, steps.plan.old_live, steps.plan.new_live
    assert isinstance(report, Reattach)
    started = time.monotonic()
    steps.done("boot", started, _boot(runner, fencer, spare))
    started = time.monotonic()
    report.to_recover = _lost(runner, loaded, steps.plan)
    steps.done("to recover", started, f"{len(report.to_recover)} delivery(ies) to {spare} not in the live copy")
    started = time.monotonic()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report.set_aside = set_aside(runner, spare, stamp, _partition_directories(loaded, spare))
    recovery = find_recovery(runner, aside_host=spare, aside=report.set_aside[1:], since=since, live=live)
    report.no_mailbox = [asdict(m) for m in recovery.no_mailbox]
    steps.done("set aside", started, _aside_detail(report.set_aside, recovery, window_hours))
    return recovery


def _recover(
    runner: CommandRunner,
    loaded: LoadedEstate,
    report: Reattach,
    recovery: Recovery,
    *,
    since: int,
    admin_password: str,
    sync_timeout: float,
) -> str:
    """Append what only the set-aside copy had; then nothing is left, the pair is in sync and
    the MX logs' deliveries are in the live copy."""
    plan = report.plan
    spare, live = plan.old_live, plan.new_live
    report.appended, report.redelivered = append_recovered(
        runner, recovery, aside_host=spare, live=live, admin_password=admin_password
    )
    left = find_recovery(runner, aside_host=spare, aside=report.set_aside[1:], since=since, live=live)
    if len(left.to_append) > report.redelivered:
        raise StoreError(f"{len(left.to_append)} set-aside message(s) still not in the live copy after the append")
    if not wait_in_sync(pair_specs(loaded, [plan.pair]), runner, sync_timeout):
        raise StoreError(f"{plan.pair} is not in sync {sync_timeout:.0f} s after the recovery")
    report.not_recovered = _lost(runner, loaded, plan)
    there = len(report.to_recover) - len(report.not_recovered)
    again = f", {report.redelivered} there already (delivered again)" if report.redelivered else ""
    return (
        f"{report.appended} message(s) appended{again}; {there} of {len(report.to_recover)} deliveries in the live copy; in sync"
    )


def _partition_directories(loaded: LoadedEstate, host: str) -> list[str]:
    storage = loaded.estate.host(host).storage
    assert storage is not None  # invariants: store hosts describe their storage
    return [f"{storage.mount}/{path}" for path in sorted(partitions(loaded.estate, host).values())]


def _aside_detail(aside: Sequence[str], recovery: Recovery, window_hours: float) -> str:
    detail = (
        f"moved to {', '.join(aside)}; {len(recovery.to_append)} message(s) of the last {window_hours:g} h not in the live copy"
    )
    return detail + (f", {len(recovery.no_mailbox)} in mailboxes the live member lacks" if recovery.no_mailbox else "")


def _boot(runner: CommandRunner, fencer: Fencer, spare: str) -> str:
    """Bring the fenced member up, and make sure its fence held: Cyrus down, the file there."""
    booted = fencer.boot(spare)
    state = cyrus_state(runner, spare)
    fenced = runner.run(spare, ["sh", "-c", f"test -e {FENCE_FILE} && echo fenced || true"], user=ROOT).strip() == "fenced"
    if state != "inactive" or not fenced:
        raise StoreError(f"{spare} is up with Cyrus {state} and {'its' if fenced else 'no'} fence file: refusing to touch it")
    return f"{booted}; Cyrus {state}, {FENCE_FILE} present"


def _resync(runner: CommandRunner, loaded: LoadedEstate, pair: str) -> str:
    """Every user of the pair copied to the (empty) spare."""
    [spec] = pair_specs(loaded, [pair])  # the estate file as the flip left it: no member fenced
    users = sorted(spec.owners)
    if users:
        runner.run(spec.live, [f"{CYRUS_BIN}/sync_client", "-n", REPLICA_CHANNEL, "-u", *users])
    return f"{len(users)} user(s) copied from {spec.live} to {spec.spare}"
