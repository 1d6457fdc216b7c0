"""The dns role's one rule that templates cannot state plainly: a zone's SOA serial.

A zone file the role wrote carries, beside its serial, a digest of everything else in it
(``; content-sha256: <hex>``). The serial a new rendering gets:

- the file's own serial, when the new content has the same digest: nothing changed, so nothing
  is written (a second run changes nothing, and secondaries are not asked to transfer);
- otherwise the larger of that serial + 1 and today's date serial (YYYYMMDD00), so serials
  read as dates and only ever increase (past 2**32 - 1 the serial wraps, as RFC 1982 allows);
- today's date serial for a zone without a file yet.
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Iterable, Mapping
from typing import Any

SERIAL_MODULUS = 2**32
_DIGEST = re.compile(r"^; content-sha256: ([0-9a-f]{64})$", re.MULTILINE)
_SERIAL = re.compile(r"^\s*(\d+) ; serial$", re.MULTILINE)


def date_serial(today: datetime.date) -> int:
    """The first serial of a day: YYYYMMDD00."""
    return int(today.strftime("%Y%m%d")) * 100


def next_serial(previous: str, digest: str, today: datetime.date) -> int:
    """The serial of a zone whose content has ``digest``, given the text of its file on the host
    (empty when there is none)."""
    serial = _SERIAL.search(previous)
    if serial is None:
        return date_serial(today)
    old = int(serial.group(1))
    stored = _DIGEST.search(previous)
    if stored is not None and stored.group(1) == digest:
        return old
    first_today = date_serial(today)
    return first_today if old < first_today else (old + 1) % SERIAL_MODULUS


def _file_text(slurped: Iterable[Mapping[str, Any]], path: str) -> str:
    for result in slurped:
        if result.get("source") == path and "content" in result:
            return base64.b64decode(result["content"]).decode("utf-8")
    return ""


def dns_zone_serial(slurped: Iterable[Mapping[str, Any]], path: str, digest: str) -> int:
    """Filter: the serial for the zone file at ``path``, from the results of slurping the zone
    files in place (``register`` of an ``ansible.builtin.slurp`` loop)."""
    return next_serial(_file_text(slurped, path), digest.strip(), datetime.datetime.now(datetime.UTC).date())


class FilterModule:
    """The role's filters."""

    def filters(self) -> dict[str, Any]:
        return {"dns_zone_serial": dns_zone_serial}
