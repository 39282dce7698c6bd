"""A local SMTP server for the example: prints each message's recipient, subject and text.

    .venv/bin/python examples/fastapi_app/mailbox.py        # listens on 127.0.0.1:8025 (SMTP_PORT)

``python -m aiosmtpd -n -l 127.0.0.1:8025`` works too, but prints the raw MIME
message, whose text part is base64-encoded.
"""

from __future__ import annotations

import email
import email.policy
import os
import threading
from typing import Any

from aiosmtpd.controller import Controller


class PrintText:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        body = text.get_content() if text is not None else "(no text part)"
        print(f"--- to {message['To']}: {message['Subject']}\n{body.strip()}\n", flush=True)
        return "250 Message accepted for delivery"


if __name__ == "__main__":
    port = int(os.environ.get("SMTP_PORT", "8025"))
    controller = Controller(PrintText(), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"SMTP on 127.0.0.1:{port}; Ctrl+C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
