"""The failover and the reattach, with the hosts, the fence, the deploy and the store check
replaced; the parsers of what they read (the MX logs, a set-aside copy) on real samples; and
the model and render of a fenced member. The real thing runs in molecule/lab."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hermes.cli import app
from hermes.errors import EstateError, StoreError
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.render import render_inventory
from hermes.store import failover as failover_module
from hermes.store.failover import FailoverError, fail_over, failover_plan
from hermes.store.fence import FENCE_FILE
from hermes.store.hold import MX_HOLDS_FILE, held_pairs, hold_targets
from hermes.store.missing import Delivery, deliveries, missing, parse_received_ids
from hermes.store.operation import FLIP_TAGS, FlipPlan, record_pair
from hermes.store.reattach import reattach_plan
from hermes.store.recover import ADMIN_SOCKET, ADMIN_USER, AsideMessage, only_aside, parse_listing, redelivered
from hermes.topology import channels
from tests.conftest import LAB, WriteEstate
from tests.test_store_switchover import Cyrus

# A delivery to store-1a (10.251.0.25), one to two recipients (=> then ->), a delivery to
# Mailman's LMTP (another transport), and a reception without a Message-ID; as Exim 4.96 logs.
MAINLOG = "".join(
    line + "\n"
    for line in (
        "2026-12-02 22:53:09 1xYtCH-0001sX-15 <= fanf2@hermes.lab.test H=(access-1) [10.251.0.9]"
        ' P=esmtpsa S=2277 id=E1xYtCE-0001sS-2f@ppsw-1.lab.test T="list post"',
        "2026-12-02 22:53:09 1xYtCH-0001sX-15 => dpc22@hermes.lab.test"
        ' R=store T=store_lmtp H=10.251.0.25 [10.251.0.25] C="250 2.1.5 Success" QT=0s DT=0s',
        "2026-12-02 22:53:09 1xYtCH-0001sX-15 => fanf2@hermes.lab.test"
        ' R=store T=store_lmtp H=10.251.0.154 [10.251.0.154] C="250 2.1.5 Success" QT=0s DT=0s',
        "2026-12-02 22:53:09 1xYtCH-0001sX-15 -> ph10@hermes.lab.test"
        ' R=store T=store_lmtp H=10.251.0.154 [10.251.0.154] C="250 2.1.5 Success" QT=0s DT=0s',
        "2026-12-02 22:53:09 1xYtCH-0001sX-15 Completed QT=0s",
        "2026-12-02 22:53:10 1xYtCI-0001sY-1A <= stranger@internet.test H=(client.internet.test) [10.252.0.5]"
        ' P=esmtp S=512 T="load 1"',
        "2026-12-02 22:53:10 1xYtCI-0001sY-1A => cet1@hermes.lab.test"
        ' R=store T=store_lmtp H=10.251.0.25 [10.251.0.25] C="250 2.1.5 Success"',
        "2026-12-02 22:53:11 1xYtCJ-0001sZ-2B => cs-unix-support@lists.lab.test R=lists T=mailman_lmtp H=10.251.0.9 [10.251.0.9]",
    )
)


def test_the_mx_log_gives_each_store_delivery_with_its_message_id() -> None:
    found = deliveries("ppsw-1", MAINLOG)
    assert [(d.exim_id, d.recipient, d.address) for d in found] == [
        ("1xYtCH-0001sX-15", "dpc22@hermes.lab.test", "10.251.0.25"),
        ("1xYtCH-0001sX-15", "fanf2@hermes.lab.test", "10.251.0.154"),
        ("1xYtCH-0001sX-15", "ph10@hermes.lab.test", "10.251.0.154"),
        ("1xYtCI-0001sY-1A", "cet1@hermes.lab.test", "10.251.0.25"),
    ]
    assert found[0].message_id == "E1xYtCE-0001sS-2f@ppsw-1.lab.test" and found[-1].message_id is None
    assert deliveries("ppsw-1", MAINLOG, transport="mailman_lmtp")[0].recipient == "cs-unix-support@lists.lab.test"


def test_missing_is_what_went_to_the_old_member_and_the_live_copy_lacks() -> None:
    found = deliveries("ppsw-1", MAINLOG)
    users = ["cet1", "dpc22", "fanf2"]
    # dpc22's message is in the live copy (its queue id in a Received: header); cet1's is not.
    present = {"dpc22": frozenset({"1xYtCH-0001sX-15"}), "cet1": frozenset({"1xYtAA-0000aa-11"})}
    lost = missing(found, "10.251.0.25", "hermes.lab.test", users, present)
    assert [(d.recipient, d.exim_id) for d in lost] == [("cet1@hermes.lab.test", "1xYtCI-0001sY-1A")]
    # A user with no mailbox at all on the live member: all of theirs is missing.
    assert len(missing(found, "10.251.0.25", "hermes.lab.test", users, {})) == 2
    # Another store's deliveries, or users of another pair, are never named.
    assert missing(found, "10.251.0.25", "hermes.lab.test", ["fanf2"], {}) == []


def test_received_ids_are_read_per_user_from_folded_and_inline_headers() -> None:
    listing = "@user cet1\n\tid 1xYtCI-0001sY-1A\n id 1xYtCH-0001sX-15\n@user rjd4\n"
    assert parse_received_ids(listing) == {"cet1": frozenset({"1xYtCI-0001sY-1A", "1xYtCH-0001sX-15"}), "rjd4": frozenset()}


def test_a_set_aside_copy_is_read_by_mailbox_unique_id_and_guid() -> None:
    path = "/srv/mail/spool.fenced-x/uuid/t/6/t6dghj8zf38d47d2gi3kprq7/12."
    other = "/srv/mail/spool.fenced-x/uuid/a/b/abunknown/3."
    listing = f"1796251989.0000000000 {path}\n1796251990.5 {other}\n{'9d' * 20}  {path}\n{'ab' * 20}  {other}\n"
    [one, two] = sorted(parse_listing(listing), key=lambda m: m.uid, reverse=True)
    assert (one.unique_id, one.uid, one.guid, one.internaldate) == ("t6dghj8zf38d47d2gi3kprq7", 12, "9d" * 20, 1796251989)
    names = {"t6dghj8zf38d47d2gi3kprq7": "user.cet1"}
    # Its GUID in the live mailbox: nothing to do; not there: appended; no such mailbox: reported.
    assert only_aside([one], names, {"user.cet1": frozenset({"9d" * 20})}).to_append == ()
    recovery = only_aside([one, two], names, {"user.cet1": frozenset({"ff" * 20})})
    assert recovery.to_append == (("user.cet1", one),) and recovery.no_mailbox == (two,)


def test_a_message_the_mx_delivered_again_is_not_recovered_twice() -> None:
    message = (
        b"Received: from client\r\n\tby ppsw-1.lab.test with esmtp (Exim 4.96)\r\n\tid 1xYtCI-0001sY-1A\r\n"
        b"\tfor cet1@x;\r\nSubject: a\r\n\r\nbody id 1xYtZZ-0001sY-1A\r\n"
    )
    assert redelivered(message, "cet1", {"cet1": frozenset({"1xYtCI-0001sY-1A"})})
    assert not redelivered(message, "cet1", {"cet1": frozenset({"1xYtZZ-0001sY-1A"})})  # the body does not count
    assert not redelivered(message, "rjd4", {"cet1": frozenset({"1xYtCI-0001sY-1A"})})


def test_the_role_and_hermesctl_agree_on_the_fence_file_and_the_admin_socket() -> None:
    role = PROJECT_ROOT / "roles" / "cyrus_store"
    published = yaml.safe_load((role / "vars" / "main" / "published.yml").read_text())
    internal = yaml.safe_load((role / "vars" / "main" / "role.yml").read_text())
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    assert published["cyrus_store_fence_file"] == FENCE_FILE
    assert internal["_cyrus_store_imap_socket"] == ADMIN_SOCKET and defaults["cyrus_store_admin_user"] == ADMIN_USER
    dropin = (role / "templates" / "etc" / "systemd" / "system" / "cyrus-imapd.service.d" / "hermes-fence.conf.j2").read_text()
    assert "ConditionPathExists=!{{ cyrus_store_fence_file }}" in dropin


def test_only_the_spare_can_be_fenced_and_a_fenced_spare_gets_no_channel(write_estate: WriteEstate) -> None:
    loaded = load_estate(write_estate({"services.store_pairs[0].fenced": "store-1b"}))
    [pair] = [p for p in loaded.estate.services.store_pairs if p.name == "cyrus-1"]
    assert [c.name for c in channels(pair)] == ["backup"]
    files = render_inventory(loaded, "lab.yml")
    assert yaml.safe_load(files["hosts.yml"].split("---\n", 1)[1])["all"]["children"]["fenced"]["hosts"] == {pair.spare: None}
    live = yaml.safe_load(files[f"host_vars/{pair.live}.yml"].split("---\n", 1)[1])
    assert [c["name"] for c in live["hermes_cyrus"]["replication_channels"]] == ["backup"]
    # The unfenced pair keeps both channels, and the live member cannot be fenced.
    [other] = [p for p in loaded.estate.services.store_pairs if p.name != "cyrus-1"]
    assert [c.name for c in channels(other)] == ["replica", "backup"]
    with pytest.raises(EstateError, match="fenced host 'store-1a' is not the pair's spare"):
        load_estate(write_estate({"services.store_pairs[0].fenced": "store-1a"}))


def test_record_pair_adds_and_removes_the_fenced_line_only(tmp_path: Path) -> None:
    for source in LAB.parent.glob(LAB.stem + ".*"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    path = tmp_path / LAB.name
    text = path.read_text()
    record_pair(path, "cyrus-1", live="store-1b", fenced="store-1a")
    [pair, _] = load_estate(path).estate.services.store_pairs
    assert (pair.live, pair.fenced) == ("store-1b", "store-1a")
    added = [line for line in path.read_text().splitlines() if line not in text.splitlines()]
    assert added == ["      live: store-1b", "      fenced: store-1a"]
    record_pair(path, "cyrus-1", live="store-1a", fenced=None)
    assert path.read_text() == text
    # A fenced live member is refused by the model, and the file put back.
    with pytest.raises(EstateError, match="not the pair's spare"):
        record_pair(path, "cyrus-1", live="store-1a", fenced="store-1a")
    assert path.read_text() == text


class Lost(Cyrus):
    """The lab's hosts with the live member store-1a gone, or answering with Cyrus ``state``."""

    def __init__(self, targets: Any, state: str | None) -> None:
        super().__init__(targets)
        self.state = state

    def run(self, host: str, argv: Any, *, user: str = "cyrus", stdin: str | None = None) -> str:
        if list(argv[:2]) == ["sh", "-c"] and "is-active" in argv[2]:
            if host == "store-1a":
                if self.state is None:
                    raise failover_module.StoreError("store-1a: podman exited 125: container is not running")
                return self.state + "\n"
            return "active\n"
        return super().run(host, argv, user=user, stdin=stdin)


class Fence:
    def __init__(self) -> None:
        self.fenced: list[str] = []

    def fence(self, host: str, unit: str) -> str:
        self.fenced.append(host)
        return f"{host} fenced"

    def boot(self, host: str) -> str:
        return f"{host} booted"


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No resync and no MX logs to read: those are the lab's to prove."""
    monkeypatch.setattr(failover_module, "_resync", lambda *_: "0 user(s) copied")
    lost = Delivery("ppsw-1", "2026-12-02 22:53:10", "1xYtCI-0001sY-1A", "cet1@hermes.lab.test", "10.251.0.25", None)
    monkeypatch.setattr(failover_module, "lost_on", lambda *_, **__: [lost])
    monkeypatch.setattr("hermes.store.hold.MAP_RELOAD_SECONDS", 0)


@pytest.mark.usefixtures("quiet")
def test_a_failover_fences_holds_flips_without_the_lost_member_and_names_what_is_missing() -> None:
    loaded = load_estate(LAB)
    hosts, fence = Lost(hold_targets(loaded), None), Fence()
    deployed: list[tuple[FlipPlan, set[str], tuple[str, ...], bool]] = []

    def deploy(plan: FlipPlan, limit: str, tags: tuple[str, ...], skip: tuple[str, ...]) -> dict[str, int]:
        held = all(held_pairs(text, "mx") == {"cyrus-1"} for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE)
        assert fence.fenced == ["store-1a"]  # fenced before anything else
        deployed.append((plan, set(limit.split(",")), tags, held))
        return {}

    report = fail_over(loaded, "cyrus-1", hosts, deploy, fence)
    assert [s.name for s in report.steps] == ["gate", "fence", "hold", "flip", "resync", "release", "missing", "confirm"]
    [(plan, flipped, tags, held), (_, confirmed, _, confirm_held)] = deployed
    services = loaded.estate.services
    assert (plan.new_live, plan.fenced) == ("store-1b", "store-1a") and tags == FLIP_TAGS and held
    # The lost member is in no deploy; the backup server, every MX and proxy are.
    assert flipped == {"store-1b", "backup-1", *services.mx.hosts, *services.proxy.hosts}
    assert confirmed == flipped | set(services.dns.hosts) and not confirm_held
    assert [d.recipient for d in report.missing] == ["cet1@hermes.lab.test"] and report.outcome()["missing"]
    assert all(not held_pairs(text, "mx") for (_, path), text in hosts.files.items() if path == MX_HOLDS_FILE)


@pytest.mark.usefixtures("quiet")
def test_a_failover_is_refused_while_the_live_member_runs_cyrus_or_the_spare_does_not() -> None:
    loaded = load_estate(LAB)
    hosts, fence = Lost(hold_targets(loaded), "active"), Fence()
    with pytest.raises(FailoverError, match="store-1a answers with Cyrus active: a failover would make a second master"):
        fail_over(loaded, "cyrus-1", hosts, lambda *_: pytest.fail("deployed"), fence)
    assert fence.fenced == [] and hosts.writes == []
    # Cyrus down on a host that answers: a failover (it will be fenced from here).
    hosts = Lost(hold_targets(loaded), "failed")
    assert fail_over(loaded, "cyrus-1", hosts, lambda *_: {}, fence).plan.fenced == "store-1a"

    class NoSpare(Lost):
        def run(self, host: str, argv: Any, *, user: str = "cyrus", stdin: str | None = None) -> str:
            if host == "store-1b":
                raise failover_module.StoreError("store-1b: no answer")
            return super().run(host, argv, user=user, stdin=stdin)

    with pytest.raises(FailoverError, match="the spare store-1b does not answer: there is nothing to promote"):
        fail_over(loaded, "cyrus-1", NoSpare(hold_targets(loaded), None), lambda *_: pytest.fail("deployed"), Fence())


def test_plans_refuse_what_cannot_be_done(write_estate: WriteEstate) -> None:
    loaded = load_estate(LAB)
    assert "store-2a" not in failover_plan(loaded, "cyrus-2").flip_hosts
    with pytest.raises(Exception, match="has no fenced member: there is nothing to reattach"):
        reattach_plan(loaded, "cyrus-1")
    fenced = load_estate(write_estate({"services.store_pairs[0].live": "store-1b", "services.store_pairs[0].fenced": "store-1a"}))
    with pytest.raises(Exception, match="store-1a is fenced: there is nothing to fail over to"):
        failover_plan(fenced, "cyrus-1")
    plan = reattach_plan(fenced, "cyrus-1")
    assert (plan.old_live, plan.new_live, plan.fenced) == ("store-1a", "store-1b", None) and "store-1a" in plan.flip_hosts


def test_a_real_estate_failover_needs_the_operators_word_that_the_host_is_off() -> None:
    refused = CliRunner().invoke(app, ["store", "failover", "cyrus-1", "--estate", str(LAB)])
    assert refused.exit_code == 2 and "--fenced" in refused.output, refused.output
    unknown = CliRunner().invoke(app, ["store", "failover", "nope", "--lab", "--estate", str(LAB)])
    assert unknown.exit_code == 2 and "no store pair nope" in unknown.output, unknown.output


ENCODED = base64.b64encode(b"Subject: x\r\n\r\nbody\r\n").decode()


def test_recovered_messages_are_fed_with_the_password_on_stdin_only() -> None:
    from hermes.store.recover import APPEND_PROGRAM, Recovery, append_recovered

    message = AsideMessage("u1", 7, "ab" * 20, 1796251989, "/srv/mail/spool.fenced-x/uuid/u/1/u1/7.")
    calls: list[tuple[str, list[str], str | None]] = []
    secret = "s3cret-" + base64.b64encode(b"x").decode()

    class Hosts:
        def run(self, host: str, argv: Any, *, user: str = "cyrus", stdin: str | None = None) -> str:
            calls.append((host, list(argv), stdin))
            if host == "store-1a":  # the set-aside copy
                return f"{message.path} {ENCODED}\n"
            if argv[0] == APPEND_PROGRAM:
                return '{"appended": 1}\n'
            return "@user cet1\n"  # the live copy's queue ids: none

    appended = append_recovered(
        Hosts(), Recovery((("user.cet1", message),), ()), aside_host="store-1a", live="store-1b", admin_password=secret
    )
    assert appended == (1, 0)
    [(host, argv, stdin)] = [c for c in calls if c[1][0] == APPEND_PROGRAM]
    assert host == "store-1b" and secret not in " ".join(argv)
    assert stdin is not None and stdin.startswith(secret + "\n") and '"internaldate": 1796251989' in stdin


def test_a_set_aside_is_named_by_the_stamp_the_member_answers() -> None:
    from hermes.store.recover import set_aside

    class Member:
        def __init__(self, answer: str) -> None:
            self.answer = answer

        def run(self, host: str, argv: Any, *, user: str = "cyrus", stdin: str | None = None) -> str:
            return self.answer

    # Moved now, or found set aside by a reattach that stopped before its flip: the copy the
    # member names is the one recovered from.
    assert set_aside(Member("20261203T034959Z\n"), "store-1a", "20261203T034959Z", ["/srv/mail/spool"]) == (
        "/var/lib/cyrus.fenced-20261203T034959Z",
        "/srv/mail/spool.fenced-20261203T034959Z",
    )
    assert set_aside(Member("20261202T101010Z\n"), "store-1a", "20261203T034959Z", ["/srv/mail/spool"])[1] == (
        "/srv/mail/spool.fenced-20261202T101010Z"
    )
    with pytest.raises(StoreError, match="setting its Cyrus state aside answered"):
        set_aside(Member("mv: cannot move\n"), "store-1a", "20261203T034959Z", ["/srv/mail/spool"])
