#!/usr/bin/python3
"""The address this deploy reaches the host from, and whether a management network holds it.

Read from SSH_CONNECTION ("client port server port"), which sshd gives the session the deploy
runs in. A connection that is not SSH (the controller itself, podman exec) has no source
address: nothing to check. Reads only; changes nothing.
"""

from __future__ import annotations

import ipaddress
import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: management_source
short_description: The deploy's source address, and whether a management network holds it
description: >-
  Returns source (the SSH client address, or empty when the connection is not SSH) and
  admitted (true when a network of networks holds it, or there is no SSH source).
options:
  networks:
    type: list
    elements: str
    required: true
    description: The management networks, as CIDR subnets.
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={"networks": {"type": "list", "elements": "str", "required": True}}, supports_check_mode=True
    )
    connection = os.environ.get("SSH_CONNECTION", "").split()
    if not connection:
        module.exit_json(changed=False, source="", admitted=True)
    source = ipaddress.ip_address(connection[0])
    if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
        source = source.ipv4_mapped
    networks = [ipaddress.ip_network(n) for n in module.params["networks"]]
    module.exit_json(changed=False, source=str(source), admitted=any(source in n for n in networks))


if __name__ == "__main__":
    main()
