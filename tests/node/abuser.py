"""A misbehaving client for the resource suite (tests/node/test_resource_limits.py).

Run as ``python abuser.py KIND URL TOKEN``; it prints ``ready`` once the abuse is under way,
keeps it up until its stdin closes, then prints one JSON line of what the node answered
(``{"<status>": count, ...}`` plus counters of its own). Only the standard library, in a
process of its own: the abuse takes none of the test process's time.

Kinds:

* ``observe``: open observe subscriptions as fast as the node answers, never poll them;
* ``big_ask``: three threads sending 10 MB asks, one sending 10 MB bodies with no token;
* ``long_asks``: three threads sending asks of the longest question allowed;
* ``connections``: hold idle connections, dribble request heads and bodies byte by byte,
  and reopen every connection the node closes;
* ``readers``: 24 threads replaying as fast as the node answers (item 12);
* ``deep_payloads``: remembers whose payload nests 900 levels deep (item 13);
* ``held_batches``: batches of 500 atoms that are all held in quarantine (item 13).
"""

from __future__ import annotations

import collections
import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

counts: collections.Counter[str] = collections.Counter()
lock = threading.Lock()
stop = threading.Event()


def count(key: str) -> None:
    with lock:
        counts[key] += 1


def post_loop(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    pause: float,
    most: int = 1_000_000,
) -> None:
    """POST ``body`` to ``path`` at most ``most`` times, ``pause`` seconds apart."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    for _ in range(most):
        if stop.wait(pause):
            break
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            count(str(resp.status))
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException):
            # The node answered before the body was sent and closed the connection: the
            # answer may be readable still, or lost to the reset.
            try:
                count(str(conn.getresponse().status))
            except (OSError, http.client.HTTPException):
                count("reset")
            conn.close()


def observe(host: str, port: int, token: str) -> list[Callable[[], None]]:
    body = json.dumps({"world": "demo"}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # 1,000 subscriptions asked for at up to 500 a second (the reader asked for 10,000).
    return [lambda: post_loop(host, port, "/observe/start", body, headers, pause=0.002, most=1000)]


def big_ask(host: str, port: int, token: str) -> list[Callable[[], None]]:
    body = json.dumps({"world": "demo", "text": "why " * 2_500_000}).encode()  # 10 MB
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    anon = {"Content-Type": "application/json"}
    # Three asks of 10 MB at a time (as in the issue), and one 10 MB body with no token; each
    # thread sends its next request 50 ms after the node answered its last.
    return [lambda: post_loop(host, port, "/ask", body, auth, pause=0.05) for _ in range(3)] + [
        lambda: post_loop(host, port, "/remember/batch", body, anon, pause=0.05)
    ]


def long_asks(host: str, port: int, token: str) -> list[Callable[[], None]]:
    words = " ".join(f"latency{i} step{i}" for i in range(2000))
    body = json.dumps({"world": "demo", "text": words[:8192]}).encode()  # the longest allowed
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # Three at a time, each thread's next 20 ms after its last was answered.
    return [lambda: post_loop(host, port, "/ask", body, auth, pause=0.02) for _ in range(3)]


def connections(host: str, port: int, token: str) -> list[Callable[[], None]]:
    head = b"POST /ask HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    slow_body = head + f"authorization: Bearer {token}\r\ncontent-length: 100000\r\n\r\n".encode()

    def hold(first: bytes, dribble: bytes, sockets: int) -> None:
        # ``sockets`` connections; each sends ``first`` then one byte of ``dribble`` per
        # 0.1 s; a connection the node closes is counted by its first answer and reopened.
        open_: list[tuple[socket.socket, int]] = []
        while not stop.is_set():
            while len(open_) < sockets and not stop.is_set():
                try:
                    s = socket.create_connection((host, port), timeout=5)
                    s.setblocking(False)
                    if first:
                        s.send(first)
                    open_.append((s, 0))
                    count("opened")
                except OSError:
                    count("connect_error")
                    time.sleep(0.01)
            kept = []
            for s, sent in open_:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data is None:
                    try:
                        if dribble:
                            s.send(dribble[sent % len(dribble) : sent % len(dribble) + 1])
                        kept.append((s, sent + 1))
                        continue
                    except OSError:
                        data = b""
                status = data[9:12].decode("ascii", "replace") if data else "closed"
                count(status)
                s.close()
            open_ = kept
            time.sleep(0.1)
        for s, _ in open_:
            s.close()

    return [
        lambda: hold(b"", b"", 60),  # idle: connect, send nothing
        lambda: hold(b"GET /healthz HTTP/1.1\r\n", b"x-slow: 1\r\n", 30),  # slow head
        lambda: hold(slow_body, b"{" + b" " * 100, 30),  # slow body
    ]


def readers(host: str, port: int, token: str) -> list[Callable[[], None]]:
    # Item 12: many concurrent readers (each request runs on one of the node's threads).
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    replay = json.dumps({"world": "demo", "filter": {"limit": 20}}).encode()
    return [lambda: post_loop(host, port, "/replay", replay, auth, pause=0.0) for _ in range(24)]


def deep_payloads(host: str, port: int, token: str) -> list[Callable[[], None]]:
    # Item 13: payloads nested 900 deep (once a RecursionError and a 500).
    deep = "[" * 900 + "]" * 900
    body = json.dumps(
        {"world": "junk", "worker": "x", "payload_json": '{"a": ' + deep + "}"}
    ).encode()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return [lambda: post_loop(host, port, "/remember", body, auth, pause=0.005) for _ in range(2)]


def held_batches(host: str, port: int, token: str) -> list[Callable[[], None]]:
    # Item 13: batches of 500 atoms that are all held (their ids once went into a response
    # header: ~420 KB for a large batch). Smaller than the batch because a batch's
    # CPU (about 0.45 ms per atom, see issue 14) competes with asks for this process's GIL.
    atoms = [{"world": "junk", "worker": "x", "payload_json": '{"v": NaN}'} for _ in range(500)]
    body = json.dumps({"atoms": atoms}).encode()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def send() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        # One batch a second: this row is about what the answer carries, not write load.
        while not stop.wait(1.0):
            conn.request("POST", "/remember/batch", body=body, headers=auth)
            resp = conn.getresponse()
            data = resp.read()
            count(str(resp.status))
            head = sum(len(k) + len(v) for k, v in resp.getheaders())
            with lock:
                counts["max_header_bytes"] = max(counts["max_header_bytes"], head)
                held = sum(
                    1 for a in json.loads(data) if isinstance(a, dict) and a.get("quarantined")
                )
                counts["held"] += held
        conn.close()

    return [send]


KINDS: dict[str, Callable[[str, int, str], list[Callable[[], None]]]] = {
    "readers": readers,
    "deep_payloads": deep_payloads,
    "held_batches": held_batches,
    "observe": observe,
    "big_ask": big_ask,
    "long_asks": long_asks,
    "connections": connections,
}


def main() -> None:
    kind, url, token = sys.argv[1:4]
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    threads = [
        threading.Thread(target=fn, daemon=True)
        for fn in KINDS[kind](parts.hostname, parts.port, token)
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)  # let the abuse get going
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    stop.set()
    for t in threads:
        t.join(5)
    with lock:
        print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    main()
