"""The dns role's serial rule (roles/dns/filter_plugins/dns_zone.py), and that the role's zone
template writes the serial and the digest where the rule reads them back."""

from __future__ import annotations

import base64
import datetime
import importlib.util
from types import ModuleType
from typing import Any

import jinja2
import pytest

from hermes.paths import PROJECT_ROOT

ROLE = PROJECT_ROOT / "roles" / "dns"
TODAY = datetime.date(2026, 3, 14)
FIRST_TODAY = 2026031400
DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dns_zone", ROLE / "filter_plugins" / "dns_zone.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLUGIN = _plugin()


def _zone_file(serial: int, digest: str | None) -> str:
    lines = ["; Managed by hermes", "$TTL 3600", "@ IN SOA ns1.example. hostmaster.example. (", f"\t{serial} ; serial", "\t)"]
    if digest is not None:
        lines.insert(1, f"; content-sha256: {digest}")
    return "\n".join(lines) + "\n"


def test_a_new_zone_starts_at_todays_date_serial() -> None:
    assert PLUGIN.next_serial("", DIGEST_A, TODAY) == FIRST_TODAY


def test_unchanged_content_keeps_the_serial() -> None:
    # Even an old or odd serial: nothing changed, so nothing is rewritten.
    for serial in (1, 2019010105, FIRST_TODAY + 7):
        assert PLUGIN.next_serial(_zone_file(serial, DIGEST_A), DIGEST_A, TODAY) == serial


def test_changed_content_moves_the_serial_on() -> None:
    # From an earlier day: today's first serial.
    assert PLUGIN.next_serial(_zone_file(2025123103, DIGEST_A), DIGEST_B, TODAY) == FIRST_TODAY
    # Already today (or ahead of the clock): one more, never backwards.
    assert PLUGIN.next_serial(_zone_file(FIRST_TODAY, DIGEST_A), DIGEST_B, TODAY) == FIRST_TODAY + 1
    assert PLUGIN.next_serial(_zone_file(2099010100, DIGEST_A), DIGEST_B, TODAY) == 2099010101
    # A file without a digest (written by hand) counts as changed.
    assert PLUGIN.next_serial(_zone_file(FIRST_TODAY + 3, None), DIGEST_A, TODAY) == FIRST_TODAY + 4


def test_the_serial_wraps_as_rfc_1982_allows() -> None:
    assert PLUGIN.next_serial(_zone_file(2**32 - 1, DIGEST_A), DIGEST_B, TODAY) == 0


def test_the_filter_reads_the_slurped_file_of_its_zone() -> None:
    def slurped(path: str, text: str) -> dict[str, Any]:
        return {"source": path, "content": base64.b64encode(text.encode()).decode(), "encoding": "base64"}

    results = [slurped("/z/db.a.test", _zone_file(7, DIGEST_A)), slurped("/z/db.b.test", _zone_file(9, DIGEST_B))]
    assert PLUGIN.dns_zone_serial(results, "/z/db.b.test", DIGEST_B + "\n") == 9
    assert PLUGIN.dns_zone_serial(results, "/z/db.a.test", DIGEST_A) == 7
    # A zone without a file yet: today's (UTC) first serial.
    today = datetime.datetime.now(datetime.UTC).date()
    assert PLUGIN.dns_zone_serial(results, "/z/db.new.test", DIGEST_A) == PLUGIN.date_serial(today)
    assert PLUGIN.FilterModule().filters() == {"dns_zone_serial": PLUGIN.dns_zone_serial}


@pytest.mark.parametrize("serial", [0, 2026031400, 2**32 - 1])
def test_the_zone_template_writes_what_the_rule_reads(serial: int) -> None:
    """The template (rendered as Ansible does: trim_blocks) and the filter agree on the format."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), trim_blocks=True, autoescape=False)  # noqa: S701
    environment.filters["comment"] = lambda text, decoration="# ": "\n".join(decoration + line for line in text.splitlines())
    template = environment.get_template("etc/bind/hermes/db.zone.j2")
    record = {"name": "www", "type": "A", "ttl": 60, "value": "192.0.2.1"}
    text = template.render(
        ansible_managed="Managed by hermes",
        _dns_zone_name="example.test",
        _dns_zone_digest=DIGEST_A,
        _dns_zone_serial=serial,
        _dns_all_zones={"example.test": [record, {"name": "@", "type": "TXT", "value": '"no ttl"'}]},
        dns_default_ttl=3600,
        dns_soa={"primary": "ns1.example.test", "hostmaster": "hostmaster.example.test"}
        | {"refresh": 1, "retry": 2, "expire": 3, "negative_ttl": 4},
        dns_name_servers=["ns1.example.test"],
        dns_mail_domains=["example.test"],
        dns_mail_exchangers=[{"preference": 10, "host": "mx.example.test"}],
    )
    assert PLUGIN.next_serial(text, DIGEST_A, TODAY) == serial
    assert "@ IN MX 10 mx.example.test.\n" in text
    assert "www 60 IN A 192.0.2.1\n" in text
    assert '@  IN TXT "no ttl"\n' in text
