"""hermesctl check's plan (pure): which probes run, in which order, as whom; and how a probe's
outcome becomes a result. The probes themselves run against the deployed lab in the estate
scenario (molecule/lab)."""

from __future__ import annotations

import ssl
from functools import partial

from hermes.check import Context, ProbeFailed, SpamHeaders, _spam_scan, _timed, plan_probes, probe_users
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.store.runner import PodmanRunner

LAB = PROJECT_ROOT / "inventory" / "estates" / "lab.yml"


def test_each_pair_gets_the_first_user_placed_on_it_who_has_a_password() -> None:
    loaded = load_estate(LAB)
    placed = {
        pair.name: sorted(u for u, p in loaded.placement.items() if p == pair.name) for pair in loaded.estate.services.store_pairs
    }
    everyone = dict.fromkeys(loaded.placement, "secret")
    users = probe_users(loaded, everyone)
    assert users.by_pair == {pair: names[0] for pair, names in placed.items()}
    # A user without a password (or with an empty one) is passed over for the next, and so is a
    # shared account (the probes use POP, which the proxies refuse it): the lab's confide, next.
    first, shared, third = placed["cyrus-1"][:3]
    assert loaded.shared_accounts == {shared}
    assert probe_users(loaded, everyone | {first: ""}).by_pair["cyrus-1"] == third
    # A pair none of whose users has a password gets no probe user.
    assert "cyrus-2" not in probe_users(loaded, dict.fromkeys(placed["cyrus-1"], "s")).by_pair


def test_mail_is_sent_through_every_mx_before_every_proxy_reads_it_for_each_pair() -> None:
    loaded = load_estate(LAB)
    services = loaded.estate.services
    users = probe_users(loaded, dict.fromkeys(loaded.placement, "secret"))
    probes = [(p.name, p.target) for p in plan_probes(loaded, users)]
    mx, proxies = sorted(services.mx.hosts), sorted(services.proxy.hosts)
    expected = [("dns", h) for h in sorted(services.dns.hosts)]
    expected += [(name, m) for m in mx for name in ("smtp in", "submission")]
    expected += [("list post", mx[0])]
    expected += [(kind, f"{proxy}: {pair}") for pair in users.by_pair for proxy in proxies for kind in ("pop", "imap")]
    # Each hub's verdict on the strangers' messages, read back by the mailbox probes.
    expected += [("spam scan", m) for m in mx]
    expected += [("replication", p.name) for p in services.store_pairs]
    expected += [("webmail", h) for h in sorted(services.webmail.hosts)]
    assert probes == expected


def test_a_probe_that_raises_is_a_failure_with_its_reason_and_one_that_returns_passes() -> None:
    def refused() -> str:
        raise ConnectionRefusedError(111, "Connection refused")

    def wrong() -> str:
        raise ProbeFailed("2 of 3 probe messages not in fanf2's INBOX")

    failed = _timed("smtp in", "ppsw-1", refused)
    assert (failed.ok, failed.detail) == (False, "ConnectionRefusedError: [Errno 111] Connection refused")
    assert _timed("imap", "ppsw-1", wrong).detail == "2 of 3 probe messages not in fanf2's INBOX"
    passed = _timed("dns", "dns-1", lambda: "16 names answered")
    assert (passed.ok, passed.detail) == (True, "16 names answered") and passed.seconds >= 0


def test_a_hub_passes_the_spam_scan_only_with_its_verdict_on_every_message_read() -> None:
    loaded = load_estate(LAB)
    context = Context(loaded, probe_users(loaded, {}), ssl.create_default_context(), PodmanRunner())
    mx = sorted(loaded.estate.services.mx.hosts)[0]
    verdict = SpamHeaders("No, score=0.1 required=5.0", None)
    context.verdicts[mx] = [verdict, verdict]
    assert _timed("spam scan", mx, partial(_spam_scan, context, mx)).ok
    other = sorted(loaded.estate.services.mx.hosts)[-1]
    unread = _timed("spam scan", other, partial(_spam_scan, context, other))
    assert other != mx and not unread.ok and "none of the messages" in unread.detail
    context.verdicts[mx].append(SpamHeaders(None, "spamd did not answer"))
    refused = _timed("spam scan", mx, partial(_spam_scan, context, mx))
    assert not refused.ok and refused.detail == "delivered unscanned: spamd did not answer"
    context.verdicts[mx][-1] = SpamHeaders(None, None)
    assert "without the hub's X-Spam-Status" in _timed("spam scan", mx, partial(_spam_scan, context, mx)).detail
