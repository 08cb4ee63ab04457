#!/usr/bin/env python3
"""SMTP server (aiosmtpd) for aquatwin's email notification tests.

Listens on 127.0.0.1:PORT without TLS and appends one JSON line per message to LOG, parsed
with Python's email package: {"mail_from", "rcpt_tos", "subject", "from", "to",
"content_types", "html", "text"}. Prints "READY <port>" once listening.
"""

import argparse
import asyncio
import email
import email.policy
import json
import socket
import sys

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, log):
        self.log = log

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        html = message.get_body(preferencelist=("html",))
        text = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["Subject"]),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "content_types": [part.get_content_type() for part in message.walk()],
            "html": html.get_content() if html is not None else None,
            "text": text.get_content() if text is not None else None,
        }
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    port = args.port or free_port()
    controller = Controller(Recorder(args.log), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
