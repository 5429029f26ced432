"""HTTP node benchmark: a real node process, 16 concurrent keep-alive clients.

    .venv/bin/python benchmarks/node_http.py                 # 10 s per phase, 16 clients
    .venv/bin/python benchmarks/node_http.py --duration 5 --clients 16 --atoms 10000 --json

Phases: remember (one atom per request), ask on a world of 10k atoms, and a 90/10 mix
(90 % ask, 10 % remember). The node runs in its own process (uvicorn, SQLite in a temporary
directory, access log and quarantine off); the clients are asyncio connections speaking
HTTP/1.1 directly so the client side costs as little CPU as possible on a small machine.
Prints requests/s and p50/p95/p99 latency per phase, plus the engine called in-process for
comparison (the floor the HTTP layer adds to).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

WORDS = [
    "checkout",
    "latency",
    "payment",
    "gateway",
    "timeout",
    "error",
    "retry",
    "cache",
    "database",
    "replica",
    "disk",
    "memory",
    "cpu",
    "queue",
    "worker",
    "deploy",
    "rollback",
    "incident",
    "alert",
    "customer",
    "invoice",
    "refund",
    "login",
    "session",
    "token",
    "region",
    "eu",
    "us",
    "west",
    "east",
    "service",
    "api",
    "slow",
    "fast",
    "spike",
    "drop",
]


def text(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + f" {rng.randrange(10**6)}"


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def q(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else 0.0

        return {
            "phase": self.name,
            "requests": len(lat),
            "errors": self.errors,
            "rps": round(len(lat) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": q(0.50),
            "p95_ms": q(0.95),
            "p99_ms": q(0.99),
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else 0.0,
            # CPU milliseconds per request, by process (Linux /proc; empty elsewhere)
            "cpu_ms_per_request": {
                k: round(v * 1000 / len(lat), 3) for k, v in self.cpu.items() if lat
            },
        }


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: JSON POSTs, Content-Length responses.

    A bare protocol (one write per request, the response parsed as its bytes arrive) keeps
    the load generator's own CPU small next to the node's on a 2-core machine.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.buf = b""
        self.waiter: asyncio.Future[int] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_connection(lambda: self, self.host, self.port)

    def data_received(self, data: bytes) -> None:
        buf = self.buf = self.buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = buf[:end].split(b"\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if len(buf) < end + 4 + length:
            return
        self.buf = buf[end + 4 + length :]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(int(head[0].split()[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the node closed the connection"))

    async def post(self, path: str, body: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        return await self.waiter

    def close(self) -> None:
        self.transport.close()


async def drive(
    host: str, port: int, phase: Phase, clients: int, duration: float, make: Any
) -> None:
    conns = [Conn(host, port) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in conns))
    stop = time.perf_counter() + duration

    async def loop(i: int, c: Conn) -> None:
        rng = random.Random(i)
        while time.perf_counter() < stop:
            path, body = make(rng)
            t0 = time.perf_counter()
            status = await c.post(path, body)
            dt = time.perf_counter() - t0
            if status == 200:
                phase.latencies.append(dt)
            else:
                phase.errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(i, c) for i, c in enumerate(conns)))
    phase.seconds = time.perf_counter() - t0
    for c in conns:
        c.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(node_pid: int) -> dict[str, float]:
    """CPU seconds of the node, its ask workers (its children) and this client process."""
    if not os.path.exists(f"/proc/{node_pid}/stat"):
        return {}
    workers = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
                if ppid == node_pid:
                    workers += _cpu_seconds(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return {"node": _cpu_seconds(node_pid), "ask_workers": workers, "client": time.process_time()}


def remember_req(world: str) -> Any:
    def make(rng: random.Random) -> tuple[str, bytes]:
        atom = {"world": world, "worker": f"w{rng.randrange(16)}", "payload": {"text": text(rng)}}
        return "/remember", json.dumps(atom).encode()

    return make


def ask_req(world: str) -> Any:
    def make(rng: random.Random) -> tuple[str, bytes]:
        q = {"world": world, "text": " ".join(rng.sample(WORDS, 4)), "limit": 10}
        return "/ask", json.dumps(q).encode()

    return make


def mix_req(world: str) -> Any:
    ask, remember = ask_req(world), remember_req(world)

    def make(rng: random.Random) -> tuple[str, bytes]:
        return remember(rng) if rng.random() < 0.10 else ask(rng)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_node(data_dir: str, port: int, ask_workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DWBASE_ASK_WORKERS": str(ask_workers),
        "DWBASE_LISTEN": f"127.0.0.1:{port}",
        "DWBASE_DATA_DIR": data_dir,
        "DWBASE_ACCESS_LOG": "off",
        "DWBASE_SECURITY_QUARANTINE": "off",  # 16 writers at full speed would be "bursts"
        "DWBASE_LOG_LEVEL": "warning",
    }
    code = (
        "from dwbase.config import load_settings\n"
        "from dwbase.node.server import serve\n"
        "serve(load_settings(None))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            if health.status_code == 200 and health.json()["ask_workers_ready"] == ask_workers:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("node did not become ready")


def preload(url: str, world: str, n: int) -> None:
    rng = random.Random(42)
    with httpx.Client(base_url=url, timeout=120) as http:
        for start in range(0, n, 500):
            atoms = [
                {"world": world, "worker": "loader", "payload": {"text": text(rng)}}
                for _ in range(min(500, n - start))
            ]
            r = http.post("/remember/batch", json={"atoms": atoms})
            r.raise_for_status()
        http.post("/ask", json={"world": world, "text": "warm up"}).raise_for_status()


def engine_floor(n_atoms: int, seconds: float) -> list[dict[str, Any]]:
    """The same operations on the engine in-process, one thread: what HTTP adds to."""
    import dwbase
    from dwbase.quarantine import QuarantineConfig

    out = []
    with tempfile.TemporaryDirectory() as d:
        db = dwbase.open(d, quarantine=QuarantineConfig(enabled=False))
        rng = random.Random(1)
        for name, fn in (
            ("engine remember", lambda: db.remember("w", "a", "observation", {"text": text(rng)})),
        ):
            ph = Phase(name)
            stop = time.perf_counter() + seconds
            t_start = time.perf_counter()
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                fn()
                ph.latencies.append(time.perf_counter() - t0)
            ph.seconds = time.perf_counter() - t_start
            out.append(ph.summary())
        db.remember_batch(
            [{"world": "q", "worker": "l", "payload": {"text": text(rng)}} for _ in range(n_atoms)]
        )
        db.ask("q", "warm up")
        ph = Phase("engine ask")
        stop = time.perf_counter() + seconds
        t_start = time.perf_counter()
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            db.ask("q", " ".join(rng.sample(WORDS, 4)), limit=10)
            ph.latencies.append(time.perf_counter() - t0)
        ph.seconds = time.perf_counter() - t_start
        out.append(ph.summary())
        db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--atoms", type=int, default=10_000, help="atoms in the ask world")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--no-floor", action="store_true", help="skip the in-process engine run")
    ap.add_argument(
        "--ask-workers",
        type=int,
        default=0,
        help="the node's ask_workers setting (processes answering asks; 0 = in the node)",
    )
    ap.add_argument(
        "--phases",
        default="remember,ask,mix",
        help="comma-separated phases to run (remember, ask, mix); default all three",
    )
    args = ap.parse_args()

    port = free_port()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dwbase-http-bench-") as data_dir:
        node = start_node(data_dir, port, args.ask_workers)
        try:
            url = f"http://127.0.0.1:{port}"
            preload(url, "bench-ask", args.atoms)
            phases = {
                "remember": ("remember", remember_req("bench-remember")),
                "ask": (f"ask ({args.atoms} atoms)", ask_req("bench-ask")),
                "mix": ("mix 90% ask / 10% remember", mix_req("bench-ask")),
            }
            wanted = [p.strip() for p in args.phases.split(",") if p.strip()]
            unknown = [p for p in wanted if p not in phases]
            if unknown:
                raise SystemExit(f"unknown phase(s) {unknown}; choose from {sorted(phases)}")
            for name, make in (phases[p] for p in wanted):
                ph = Phase(name)
                before = cpu_snapshot(node.pid)
                asyncio.run(drive("127.0.0.1", port, ph, args.clients, args.duration, make))
                after = cpu_snapshot(node.pid)
                ph.cpu = {k: after[k] - before[k] for k in before if k in after}
                results.append(ph.summary())
        finally:
            node.terminate()
            node.wait(timeout=30)
    if not args.no_floor:
        results += engine_floor(args.atoms, min(args.duration, 5.0))
    if args.json:
        out = {"clients": args.clients, "ask_workers": args.ask_workers, "results": results}
        print(json.dumps(out, indent=2))
        return
    print(
        f"HTTP node, ask_workers={args.ask_workers}, {args.clients} clients, "
        f"{args.duration:g} s per phase, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(f"{'phase':32} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(
            f"{r['phase']:32} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>7}"
        )
    cpu_rows = [r for r in results if r.get("cpu_ms_per_request")]
    if cpu_rows:
        print("\nCPU ms per request (node process / ask workers / load generator):")
        for r in cpu_rows:
            c = r["cpu_ms_per_request"]
            print(
                f"{r['phase']:32} {c['node']:>9.3f} {c['ask_workers']:>8.3f} {c['client']:>8.3f}"
                f"   total {sum(c.values()):.3f}"
            )


if __name__ == "__main__":
    main()
