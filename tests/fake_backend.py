"""A fake OpenAI-compatible chat backend for the serving tests: a real HTTP server on 127.0.0.1.

    python tests/fake_backend.py NAME      prints "listening PORT", then answers until killed

Each answer says which backend wrote it (``backend``) and echoes the last user message; with
``stream: true`` it sends three server-sent-event chunks and ``[DONE]``. ``authorized`` tells
whether the request carried ``Bearer $FAKE_BACKEND_KEY`` (the key itself is never sent back). A
user message that starts with ``[sleep S]`` is answered after S seconds (a request in flight).
"""

import json
import os
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: headers and body are separate writes; Nagle + delayed ACK would stall each answer ~40 ms

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        question = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        delay = re.match(r"\[sleep ([0-9.]+)\]", question)
        if delay:
            time.sleep(min(float(delay.group(1)), 10.0))
        key = os.environ.get("FAKE_BACKEND_KEY")
        authorized = bool(key) and self.headers.get("Authorization") == f"Bearer {key}"
        pieces = [f"{NAME} ", "answers: ", question]
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i, piece in enumerate(pieces):  # only the first chunk names the model, as some servers do
                chunk = {"object": "chat.completion.chunk", **({"model": body["model"]} if i == 0 else {}), "backend": NAME,
                         "choices": [{"index": 0, "delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True
            return
        answer = {
            "object": "chat.completion", "model": body["model"], "backend": NAME, "authorized": authorized,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)}, "finish_reason": "stop"}],
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    request_queue_size = 512  # the listen backlog: 200 concurrent connections must not be refused
    daemon_threads = True


if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
