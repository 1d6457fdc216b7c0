"""The hub of an estate whose message size limit is above ClamAV's defaults (35 MB here).

ClamAV skips a file over its own limits without a word; the hub must scan every message it
may accept. Sent from the controller (an Internet client) by SMTP; sizes from the rendered
estate.
"""

from __future__ import annotations

import secrets
import smtplib
from email.message import EmailMessage
from typing import Any

import pytest
from accesslib import RENDERED, address, tls

HUB = "ac-hub"
VARS: dict[str, Any] = RENDERED.get_variables(HUB)
MTA: dict[str, Any] = VARS["hermes_mta"]
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
# Debian's clamd.conf skips files over 25 MiB (MaxFileSize).
CLAMAV_DEFAULT_LIMIT = 25 * 1024 * 1024


def large_message(attachment: bytes) -> bytes:
    """A message above ClamAV's default limit and within the hub's, with ``attachment``."""
    recipient = f"postmaster@{MTA['mail_domain']}"
    message = EmailMessage()
    message["From"] = recipient
    message["To"] = recipient
    message["Subject"] = f"large {secrets.token_hex(8)}"
    message.set_content("a large message")
    message.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="payload.bin")
    # Random bytes (base64: 4/3 larger) up to halfway between the two limits.
    padding = (CLAMAV_DEFAULT_LIMIT + MTA["message_size_limit_bytes"]) // 2 * 3 // 4
    message.add_attachment(secrets.token_bytes(padding), maintype="application", subtype="octet-stream", filename="pad.bin")
    data = message.as_bytes()
    assert CLAMAV_DEFAULT_LIMIT < len(data) < MTA["message_size_limit_bytes"]
    return data


def test_messages_above_clamavs_default_limit_are_scanned() -> None:
    assert MTA["message_size_limit_bytes"] > CLAMAV_DEFAULT_LIMIT  # else this estate cannot show it
    recipient = f"postmaster@{MTA['mail_domain']}"
    with smtplib.SMTP(address(HUB), 25, timeout=120) as smtp:
        smtp.starttls(context=tls())
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail(recipient, [recipient], large_message(EICAR))
        assert refused.value.smtp_code == 550 and b"malware" in refused.value.smtp_error, refused.value
        # Control: the same size, clean, on the same connection.
        assert smtp.sendmail(recipient, [recipient], large_message(b"harmless bytes\n")) == {}
