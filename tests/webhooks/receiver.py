"""A real HTTP receiver for webhook tests, and Standard Webhooks verification written here.

The verification deliberately does not import the app's signing module: it follows the
Standard Webhooks specification on its own, so a mistake in the app cannot hide in both.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60
TRICKLED_BODY = b"." * 100  # at a byte every 0.1 s, 10 s: longer than any timeout in the tests


@dataclass(frozen=True)
class Answer:
    """How the receiver answers one request."""

    status: int = 200
    sleep: float = 0.0
    headers: dict = field(default_factory=dict)
    trickle: float = 0.0  # seconds between the bytes of a long body, sent one at a time
    trickle_head: bool = False  # the status line and headers byte by byte too
    held: bool = False  # answer only once the test calls `release()`


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict
    body: bytes
    at: float
    client: tuple = ()  # the sender's (address, port): one port per connection

    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers as scripted."""

    def __init__(self, default: Answer | None = None):
        self.default = default or Answer()
        self.script: list[Answer] = []
        self.requests: list[Received] = []
        self.statuses: list[int] = []  # the status each request was answered with, in order
        self.hang_ups = 0  # trickled answers whose sender hung up before they were complete
        self.open = 0  # requests received and not answered yet
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, *answers: Answer) -> None:
        """Answer the next requests with `answers`, in order; then with the default."""
        with self.lock:
            self.script.extend(answers)

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """Wait until `count` requests have arrived; return them all."""
        _wait_until(lambda: len(self.requests) >= count, f"{count} requests", timeout)
        return list(self.requests)

    def wait_for_open(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` requests are open at once: received, not answered yet."""
        _wait_until(lambda: self.open >= count, f"{count} requests open at once", timeout)

    def wait_for_hang_up(self, timeout: float = 30) -> None:
        """Wait until a sender hangs up on a trickled answer before it is complete."""
        _wait_until(lambda: self.hang_ups, "sender hanging up", timeout)

    def release(self) -> None:
        """Let held requests be answered."""
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Received]:
        """The requests answered with a 2xx status, in the order they arrived."""
        with self.lock:
            pairs = list(zip(self.requests, self.statuses, strict=True))
        return [request for request, status in pairs if 200 <= status < 300]

    def _next_answer(self, received: Received) -> Answer:
        with self.lock:
            self.open += 1
            self.requests.append(received)
            answer = self.script.pop(0) if self.script else self.default
            self.statuses.append(answer.status)
            return answer

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits for a delayed ACK

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = Received(self.path, headers, body, time.time(), self.client_address)
                answer = receiver._next_answer(received)
                try:
                    self._answer(answer)
                finally:
                    with receiver.lock:
                        receiver.open -= 1

            def _answer(self, answer: Answer) -> None:
                time.sleep(answer.sleep)
                if answer.held:
                    receiver.released.wait(60)
                if answer.trickle:
                    return self._trickle(answer)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def _trickle(self, answer: Answer) -> None:
                """Answer slowly but steadily, as a receiver holding a sender's thread does."""
                head = (
                    f"HTTP/1.1 {answer.status} OK\r\ncontent-length: {len(TRICKLED_BODY)}\r\n\r\n"
                )
                data = head.encode() + TRICKLED_BODY
                at_once = 0 if answer.trickle_head else len(head)
                self.close_connection = True
                try:
                    self.wfile.write(data[:at_once])
                    for byte in data[at_once:]:
                        time.sleep(answer.trickle)
                        self.wfile.write(bytes([byte]))
                except OSError:  # the sender gave up and closed the connection, as it should
                    with receiver.lock:
                        receiver.hang_ups += 1

            def log_message(self, *args):
                pass

        return Handler


def _wait_until(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        time.sleep(0.05)


def verify(secret: str, received: Received, now: float | None = None) -> bool:
    """Check a request's signature the Standard Webhooks way; False when it does not match."""
    msg_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    if abs((now or time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    key = base64.b64decode(secret[len("whsec_") :])
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in received.headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False
