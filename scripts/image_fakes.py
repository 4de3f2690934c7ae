#!/usr/bin/env python3
"""Fakes at the network edge for scripts/image-tests.sh, on loopback only.

- Telegram Bot API: POST /bot<token>/<method>. sendMessage is recorded and answered with a
  message; getMe with a bot user; anything else with `true`. GET /_sent lists the recorded
  sendMessage bodies (the test reads replies from there).
- Anthropic Messages API: POST /v1/messages answers with a fixed text and usage, as one JSON
  body or, when the request asks for `"stream": true`, as server-sent events.
- DNS (with --dns): a UDP responder on 127.0.0.53:53 that answers A queries for names under
  `--dns-zone` with 127.0.0.1 and NXDOMAIN otherwise, so a container whose resolv.conf points
  here resolves a name through DNS, as a pod resolves a Service.

Prints one JSON line {"telegram": port, "llm": port} once listening, then serves until killed
or until --max-seconds pass (it never outlives a failed test run).
"""

import argparse
import json
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY_TEXT = "Hello from the image test's LLM."
sent = []
sent_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the test's output to its own lines
        pass

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            return json.loads(body or b"null")
        except ValueError:
            return None

    def send_json(self, value, status=200):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Telegram(Handler):
    def do_GET(self):
        if self.path == "/_sent":
            with sent_lock:
                self.send_json(list(sent))
        else:
            self.send_json({"ok": False, "description": "Not Found"}, 404)

    def do_POST(self):
        parts = self.path.strip("/").split("/")
        body = self.read_json() or {}
        if len(parts) != 2 or not parts[0].startswith("bot"):
            self.send_json({"ok": False, "description": "Not Found"}, 404)
            return
        method = parts[1].lower()  # Telegram matches method names case-insensitively
        if method == "sendmessage":
            with sent_lock:
                sent.append(body)
                message_id = len(sent)
            chat = {"id": body.get("chat_id"), "type": "private", "first_name": "Lead"}
            self.send_json({"ok": True, "result": {
                "message_id": message_id, "date": 1700000000, "chat": chat,
                "from": {"id": 1, "is_bot": True, "first_name": "Bot", "username": "image_bot"},
                "text": body.get("text"),
            }})
        elif method == "getme":
            self.send_json({"ok": True, "result": {
                "id": 1, "is_bot": True, "first_name": "Bot", "username": "image_bot"}})
        else:
            self.send_json({"ok": True, "result": True})


class Llm(Handler):
    def do_POST(self):
        if self.path != "/v1/messages":
            self.send_json({"type": "error", "error": {"type": "not_found_error"}}, 404)
            return
        request = self.read_json() or {}
        model = request.get("model", "claude-image")
        usage = {"input_tokens": 42, "output_tokens": 9,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not request.get("stream"):
            self.send_json({
                "id": "msg_image", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": REPLY_TEXT}],
                "stop_reason": "end_turn", "stop_sequence": None, "usage": usage})
            return
        events = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_image", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": REPLY_TEXT}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": usage["output_tokens"]}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_dns(sock, zone):
    """A minimal DNS responder: one question per query, A records in `zone` -> 127.0.0.1."""
    zone = zone.lower().strip(".")
    while True:
        data, peer = sock.recvfrom(512)
        if len(data) < 12:
            continue
        (tid,) = struct.unpack(">H", data[:2])
        labels, i = [], 12
        while i < len(data) and data[i] != 0:
            labels.append(data[i + 1:i + 1 + data[i]].decode("ascii", "replace"))
            i += data[i] + 1
        question = data[12:i + 5]
        qtype = struct.unpack(">H", data[i + 1:i + 3])[0] if i + 3 <= len(data) else 0
        name = ".".join(labels).lower()
        known = name == zone or name.endswith("." + zone)
        answers = b""
        if known and qtype == 1:  # A; AAAA and others: known name, no records
            answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton("127.0.0.1")
        flags = 0x8180 if known else 0x8183  # NOERROR / NXDOMAIN, recursion available
        header = struct.pack(">HHHHHH", tid, flags, 1, 1 if answers else 0, 0, 0)
        sock.sendto(header + question + answers, peer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dns-zone", help="also answer DNS for this zone on 127.0.0.53:53")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()

    servers = {"telegram": ThreadingHTTPServer(("127.0.0.1", 0), Telegram),
               "llm": ThreadingHTTPServer(("127.0.0.1", 0), Llm)}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.dns_zone:
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns.bind(("127.0.0.53", 53))  # before the ready line: a taken port fails here, loudly
        threading.Thread(target=serve_dns, args=(dns, args.dns_zone), daemon=True).start()
    print(json.dumps({name: s.server_address[1] for name, s in servers.items()}), flush=True)
    threading.Event().wait(args.max_seconds)
    sys.exit(0)


if __name__ == "__main__":
    main()
