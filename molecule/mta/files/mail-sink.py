#!/usr/bin/python3
"""Test fixture of the mta scenario: an SMTP or LMTP server that keeps every message.

Usage: mail-sink PROTOCOL-PORT (e.g. lmtp-2003 or smtp-25), as the systemd template unit
mail-sink@PROTOCOL-PORT. Each message is written once per recipient, to
/var/lib/mail-sink/PROTOCOL-PORT/<recipient>/<uuid>.eml (a temporary name, then a rename),
so tests can tell where mail arrived. LMTP answers one status per recipient after DATA.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

ROOT = Path("/var/lib/mail-sink")


class Keeper:
    """aiosmtpd handler: store the message for each recipient."""

    def __init__(self, directory: Path, lmtp: bool) -> None:
        self.directory = directory
        self.lmtp = lmtp

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        header = f"X-Sink-Envelope-From: <{envelope.mail_from}>\r\n".encode()
        for recipient in envelope.rcpt_tos:
            folder = self.directory / recipient.lower()
            folder.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex
            temporary = folder / f".{name}.tmp"
            temporary.write_bytes(header + content)
            temporary.rename(folder / f"{name}.eml")
        if self.lmtp:
            return "\r\n".join("250 2.0.0 stored" for _ in envelope.rcpt_tos)
        return "250 2.0.0 stored"


def main(instance: str) -> None:
    protocol, port = instance.split("-", 1)
    directory = ROOT / instance
    directory.mkdir(parents=True, exist_ok=True)
    keeper = Keeper(directory, lmtp=protocol == "lmtp")
    server_class = LMTP if protocol == "lmtp" else SMTP

    def factory() -> SMTP:
        return server_class(keeper, data_size_limit=64 * 1024 * 1024, hostname=f"sink-{instance}")

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(factory, host="0.0.0.0", port=int(port)))  # noqa: S104 (the hub connects from the network)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main(sys.argv[1])
