"""The model accepts only what the roles implement: each refusal beside the nearest acceptance."""

from __future__ import annotations

from typing import Any

import pytest

from hermes.errors import EstateError
from hermes.loader import load_estate
from tests.conftest import WriteEstate

# (id, the refused edit, the accepted edit next to it, expected path, expected words)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        "warning-never-fires",
        {"policies.quota.warning_percent": 100},
        {"policies.quota.warning_percent": 99},
        "policies.quota.warning_percent",
        "less than or equal to 99",
    ),
    (
        "warning-always-fires",
        {"policies.quota.warning_percent": 0},
        {"policies.quota.warning_percent": 1},
        "policies.quota.warning_percent",
        "greater than or equal to 1",
    ),
    (
        "imap-without-tls",
        {"policies.ports": {"imap": {"port": 143, "tls": "none"}}},
        {"policies.ports": {"imap": {"port": 143, "tls": "starttls"}}},
        "policies.ports.imap.tls",
        "'starttls' or 'implicit'",
    ),
    (
        "pop2",
        {"policies.ports": {"pop2": {"port": 109, "tls": "none", "enabled": False}}},
        {"policies.ports": {"pop3": {"port": 110, "tls": "starttls", "enabled": False}}},
        "policies.ports.pop2",
        "unknown field",
    ),
    (
        "imap-auth-field",
        {"policies.ports": {"imap": {"port": 143, "tls": "starttls", "auth": True}}},
        {"policies.ports": {"smtps": {"port": 465, "tls": "implicit", "auth": True}}},
        "policies.ports.imap.auth",
        "unknown field",
    ),
    (
        "no-smtp-listener",
        {
            "policies.ports": {
                n: {"port": p, "tls": "starttls", "enabled": False}
                for n, p in (("smtp", 25), ("smtps", 465), ("submission", 587))
            }
        },
        {
            "policies.ports": {
                n: {"port": p, "tls": "starttls", "enabled": n == "submission"}
                for n, p in (("smtp", 25), ("smtps", 465), ("submission", 587))
            }
        },
        "policies.ports",
        "at least one of smtp, smtps and submission",
    ),
    (
        "hub-is-store",
        {"hosts[2].roles": ["store", "mx"], "services.mx.hosts": ["ppsw-1", "ppsw-2", "store-1a"]},
        {"hosts[2].roles": ["store"], "services.mx.hosts": ["ppsw-1", "ppsw-2"]},
        "services.store_pairs[0].master",
        "is a mail hub (mx) and cannot be a store",
    ),
]


@pytest.mark.parametrize(("refused", "accepted", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_beside_accepted(
    write_estate: WriteEstate, refused: dict[str, Any], accepted: dict[str, Any], path: str, words: str
) -> None:
    load_estate(write_estate(accepted))
    with pytest.raises(EstateError) as caught:
        load_estate(write_estate(refused))
    assert any(p.path == path and words in p.message for p in caught.value.problems), caught.value.problems


def test_pairs_sharing_a_backup_give_a_partition_one_path(write_estate: WriteEstate, lab_data: dict[str, Any]) -> None:
    second = {"name": "cyrus-2", "master": "store-2a", "replica": "store-2b", "live": "store-2a", "backup": "backup-1"}
    storage = {"disks": 4, "disk_size": "10GB", "raid": "raid10"}
    hosts = [
        {"name": "store-2a", "site": "lab", "rack": "r1", "network": "service", "roles": ["store"], "storage": storage},
        {"name": "store-2b", "site": "lab", "rack": "r2", "network": "service", "roles": ["store"], "storage": storage},
    ]
    lab_data["hosts"].extend(hosts)
    lab_data["placement"]["letters"] = {"a-m": "cyrus-1", "n-z": "cyrus-2"}
    same = [{"name": "default", "path": "spool"}]
    other = [{"name": "default", "path": "spool-2"}]
    load_estate(
        write_estate(
            {"services.store_pairs": [lab_data["services"]["store_pairs"][0], {**second, "partitions": same}]}, data=lab_data
        )
    )
    with pytest.raises(EstateError) as caught:
        load_estate(
            write_estate(
                {"services.store_pairs": [lab_data["services"]["store_pairs"][0], {**second, "partitions": other}]}, data=lab_data
            )
        )
    assert [p.path for p in caught.value.problems] == ["services.store_pairs[1].partitions[0].path"]
    assert "same backup server 'backup-1'" in caught.value.problems[0].message
