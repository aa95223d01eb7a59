#!/usr/bin/env python3
"""Webhook receiver for the fault harness: a threaded http.server that
answers 200 to every POST and appends one JSON line per request to --out:
{"t": unix time, "path", "headers": {lower-case name: value}, "body": JSON
(or "raw" text), "signature_ok": Standard Webhooks HMAC check when --secret
is given}. Stopping the process closes the port (the "down" receiver).

  python3 receiver.py --port 19801 --out posts.jsonl [--secret-file F]
"""
import argparse
import base64
import hashlib
import hmac
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--secret-file")
    a = ap.parse_args()
    key = None
    if a.secret_file:
        s = open(a.secret_file, encoding="utf-8").read().strip()
        key = base64.b64decode(s[6:]) if s.startswith("whsec_") else s.encode()
    out = open(a.out, "a", encoding="utf-8")

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(n)
            rec = {"t": time.time(), "path": self.path,
                   "headers": {k.lower(): v for k, v in self.headers.items()}}
            try:
                rec["body"] = json.loads(raw)
            except ValueError:
                rec["raw"] = raw.decode("utf-8", "replace")
            if key is not None and "webhook-signature" in rec["headers"]:
                h = rec["headers"]
                mac = hmac.new(key, f"{h.get('webhook-id')}.{h.get('webhook-timestamp')}.".encode() + raw,
                               hashlib.sha256).digest()
                want = "v1," + base64.b64encode(mac).decode()
                rec["signature_ok"] = any(hmac.compare_digest(want, s) for s in h["webhook-signature"].split())
            line = json.dumps(rec, ensure_ascii=False)
            with lock:
                out.write(line + "\n")
                out.flush()
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: (srv.server_close(), sys.exit(0)))
    print(f"receiver listening on 127.0.0.1:{a.port}, log {a.out}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
