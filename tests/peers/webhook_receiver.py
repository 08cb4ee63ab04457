#!/usr/bin/env python3
"""Webhook receiver for aquatwin's notification tests.

Listens on 127.0.0.1:PORT, answers every POST and appends one JSON line per request to LOG:
{"path", "delivery", "timestamp", "signature_ok", "status", "body"}. With --secret it
verifies the X-Aquatwin-Signature header independently of aquatwin (Python's hmac module):
sha256=HMAC-SHA256(secret, "<X-Aquatwin-Timestamp>.<body>") and a timestamp within 300 s
of now; a request that fails the check gets 401. The first --fail-first requests get 500.
With --tls-cert and --tls-key (PEM) it serves HTTPS (Python's ssl module, an independent TLS
implementation): a client that does not trust the certificate fails its handshake, and no
request is logged. Prints "READY <port>" once listening.
"""

import argparse
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SKEW_S = 300


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--secret")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--tls-cert", help="the server's certificate chain (PEM): serve HTTPS")
    parser.add_argument("--tls-key", help="the key of --tls-cert (PEM)")
    args = parser.parse_args()
    lock = threading.Lock()
    seen = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            timestamp = self.headers.get("X-Aquatwin-Timestamp")
            signature = self.headers.get("X-Aquatwin-Signature")
            signature_ok = None
            if args.secret is not None:
                signature_ok = False
                if timestamp is not None and signature is not None:
                    signed = timestamp.encode() + b"." + body
                    expected = "sha256=" + hmac.new(
                        args.secret.encode(), signed, hashlib.sha256
                    ).hexdigest()
                    fresh = abs(time.time() - int(timestamp)) <= MAX_SKEW_S
                    signature_ok = fresh and hmac.compare_digest(expected, signature)
            with lock:
                seen["requests"] += 1
                if seen["requests"] <= args.fail_first:
                    status = 500
                elif signature_ok is False:
                    status = 401
                else:
                    status = 200
                record = {
                    "path": self.path,
                    "delivery": self.headers.get("X-Aquatwin-Delivery"),
                    "timestamp": timestamp,
                    "signature_ok": signature_ok,
                    "status": status,
                    "body": body.decode("utf-8"),
                }
                with open(args.log, "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        # The handshake runs in accept(): a failed one is an OSError there, which the server
        # drops without stopping.
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
