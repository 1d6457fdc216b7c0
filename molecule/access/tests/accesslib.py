"""Helpers of the access scenario's tests: the scenario's facts, the hosts, and TLS and IMAP
from the controller, as every client of these tests makes them.

Expected values come from the rendered estate (estate/access.yml, what a deploy is given) and
the scenario's inventory (molecule.yml, the vault's throwaway values), read through Ansible,
so the tests and the scenario cannot drift apart.
"""

from __future__ import annotations

import functools
import imaplib
import os
import ssl
from pathlib import Path
from typing import Any

import testinfra
import testinfra.utils.ansible_runner

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
# The lab CA, which `hermesctl lab up` made and signed every host's certificate with.
CA = PROJECT / ".lab" / "pki" / "ca.crt"
MOLECULE = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
RENDERED = testinfra.utils.ansible_runner.AnsibleRunner(str(EPHEMERAL / "rendered"))


@functools.cache
def facts(name: str) -> dict[str, Any]:
    """A host's variables: the scenario's, then the rendered estate's (as Ansible ranks them)."""
    return {**MOLECULE.get_variables(name), **RENDERED.get_variables(name)}


def address(name: str) -> str:
    """A host's estate address."""
    return str(facts(name)["hermes_hosts"][name]["address"])


def host(name: str) -> Any:
    """A scenario container, to run commands in."""
    return testinfra.get_host(f"podman://{name}")


def tls() -> ssl.SSLContext:
    """A client's TLS: certificates verified against the lab CA, host names checked."""
    return ssl.create_default_context(cafile=str(CA))


def imap_session(name: str, port: int, user: str, password: str) -> imaplib.IMAP4_SSL:
    """A logged-in IMAP session (implicit TLS) on host ``name``; imaplib's own context manager
    logs it out. A refused login closes the connection and raises imaplib.IMAP4.error."""
    connection = imaplib.IMAP4_SSL(address(name), port, ssl_context=tls(), timeout=30)
    try:
        connection.login(user, password)
    except imaplib.IMAP4.error:
        connection.shutdown()
        raise
    return connection
