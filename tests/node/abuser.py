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
  and reopen every connection the node closes.
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


KINDS: dict[str, Callable[[str, int, str], list[Callable[[], None]]]] = {
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
