"""Errors of the store check."""

from __future__ import annotations

from hermes.errors import HermesError


class StoreError(HermesError):
    """A store host could not be asked (unreachable, command failed, unreadable answer)."""

    exit_code = 5
