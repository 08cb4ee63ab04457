#!/usr/bin/env python3
"""A WebSocket client of `GET /api/v1/stream`, written with Python `websockets` (an independent
implementation of the protocol): the peer of tests/serve_stream.rs.

    ws_client.py URL [--bearer TOKEN] [--rcvbuf BYTES] [--paused] [--summary]

Prints one JSON line per event on stdout:
  {"event": "refused", "status": 401, "body": "..."}   the server answered the handshake with
                                                        an HTTP error (then exits)
  {"event": "open"}
  {"event": "message", "at_ms": <unix ms received>, "data": <the message, parsed>}
  {"event": "summary", "counts": {"reading": n, ...}, "closing": <closing message or null>}
                                                        (--summary: counts instead of messages)
  {"event": "closed", "code": 1008, "reason": "..."}

Reads commands from stdin, one a line: `resume` (end --paused), anything else is sent as a text
message; end of input closes the connection normally (1000).

--paused reads nothing after the first message (hello) until `resume`: with a small --rcvbuf
(the socket's receive buffer) the server's sends then block, as with a client that stalls.
"""

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
from urllib.parse import urlparse

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def follow_stdin(loop, commands):
    """Hands stdin lines to the event loop (a daemon thread: it never holds the exit)."""

    def read():
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()


async def obey(ws, commands, resume):
    while True:
        command = await commands.get()
        if command is None:
            await ws.close()
            return
        if command == "resume":
            resume.set()
        elif command:
            await ws.send(command)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--bearer", help="access token for the Authorization header")
    parser.add_argument("--rcvbuf", type=int, help="SO_RCVBUF of the client's socket")
    parser.add_argument("--paused", action="store_true")
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()

    options = {"max_size": None, "ping_interval": None}
    if args.bearer:
        options["additional_headers"] = {"Authorization": f"Bearer {args.bearer}"}
    if args.rcvbuf:
        # Set before connecting, so the advertised window stays small.
        address = urlparse(args.url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        sock.connect((address.hostname, address.port))
        options["sock"] = sock
    try:
        ws = await connect(args.url, **options)
    except InvalidStatus as refused:
        response = refused.response
        emit("refused", status=response.status_code, body=response.body.decode(errors="replace"))
        return
    emit("open")

    resume = asyncio.Event()
    if not args.paused:
        resume.set()
    commands = asyncio.Queue()
    follow_stdin(asyncio.get_running_loop(), commands)
    obeying = asyncio.create_task(obey(ws, commands, resume))

    counts = {}
    closing = None
    first = True
    try:
        async for text in ws:
            message = json.loads(text)
            kind = message.get("type")
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "closing":
                closing = message
            if first or not args.summary:
                emit("message", at_ms=int(time.time() * 1000), data=message)
            if first:
                first = False
                await resume.wait()
    except ConnectionClosed:
        pass
    obeying.cancel()
    if args.summary:
        emit("summary", counts=counts, closing=closing)
    emit("closed", code=ws.close_code, reason=ws.close_reason)


if __name__ == "__main__":
    asyncio.run(main())
