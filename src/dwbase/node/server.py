"""Run the node under uvicorn: ``serve(settings)`` (blocking) or ``start_background``.

>>> from dwbase.config import load_settings
>>> s = load_settings(None, {"listen": "127.0.0.1:0", "storage.backend": "memory"}, environ={})
>>> with start_background(s) as node:
...     import httpx
...     httpx.get(node.url + "/healthz").json()
{'status': 'ok'}
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import uvicorn
from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from ..engine import Engine
from ..errors import ConflictError, DWBaseError
from ..security.tokens import TokenStore
from .app import create_app
from .guard import ConnectionLimits, ensure_descriptors, guarded_protocol
from .state import NodeState

log = logging.getLogger("dwbase.node")


class NodeRefusedError(DWBaseError):
    """The node will not start as configured (e.g. a public address without tokens)."""

    code = "invalid_input"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("dwbase", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level.upper())
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the node writes its own access log


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, tokens: TokenStore) -> None:
    """Refuse a non-loopback address when nobody would need a token, unless insecure."""
    auth = settings.auth_required or tokens.required()
    if not auth and not settings.insecure and not is_loopback(settings.host):
        raise NodeRefusedError(
            f"refusing to listen on {settings.listen} without authentication: create a token "
            "(dwbase token create ...), set [node.auth] required = true, or pass --insecure",
            listen=settings.listen,
        )


def banner(url: str, settings: Settings, *, auth: bool) -> str:
    """What ``dwbase node`` tells a person at a terminal as it starts: where it listens, where
    the data is, who may call it, where to read on and how to stop it."""
    if settings.storage_backend == "memory":
        data = "in memory (storage.backend = memory): gone when the node stops"
    else:
        data = str(Path(settings.data_dir).resolve())
    if auth:
        who = "bearer tokens: send 'Authorization: Bearer dwb_...' (dwbase token create --help)"
    elif is_loopback(settings.host):
        who = "none: any program on this machine may call it (tokens: docs/security.md)"
    else:
        who = "NONE (--insecure): anyone who reaches this address may call it"
    return (
        f"DWBase node {__version__} listening on {url}\n"
        f"  data   {data}\n"
        f"  auth   {who}\n"
        f"  api    {url}/openapi.json, docs/node.md\n"
        f"  try    curl {url}/health\n"
        "  stop   Ctrl+C\n"
    )


def show_banner(text: str, stream: TextIO | None = None, *, tty: bool | None = None) -> bool:
    """Write ``text`` to ``stream`` (stderr) only if it is a terminal (``tty`` overrides the
    check); a log collector reading a pipe gets the JSON log lines alone."""
    stream = stream if stream is not None else sys.stderr
    if tty is None:
        tty = stream.isatty()
    if tty:
        stream.write(text)
        stream.flush()
    return tty


def _socket(settings: Settings) -> socket.socket:
    host, port = settings.host, settings.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        other = f"{host}:{port + 1 if port < 65535 else 8081}"
        raise ConflictError(
            f"{settings.listen} is already in use (another dwbase node, or another program); "
            f"pick another address with --listen {other}, DWBASE_LISTEN={other} or listen = "
            f'"{other}" under [node]',
            listen=settings.listen,
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _server(settings: Settings, engine: Engine, tokens: TokenStore) -> uvicorn.Server:
    app = create_app(engine, settings, tokens=tokens)
    limits = ConnectionLimits(
        max_connections=ensure_descriptors(settings.limits_max_connections),
        header_timeout_s=settings.limits_header_timeout_s,
        body_timeout_s=settings.limits_body_timeout_s,
    )
    config = uvicorn.Config(
        app,
        http=guarded_protocol(limits),  # connection cap, head and body deadlines
        timeout_keep_alive=settings.limits_keep_alive_s,
        log_config=None,
        access_log=False,
        lifespan="on",  # its shutdown stops the node's lanes before the engine closes
        timeout_graceful_shutdown=5,
        server_header=False,
        proxy_headers=False,  # the node never uses the client address: skip X-Forwarded-*
    )
    return uvicorn.Server(config)


def serve(settings: Settings, *, engine: Engine | None = None) -> None:
    """Run the node until interrupted (SIGINT/SIGTERM). The engine is closed on exit."""
    configure_logging(settings.log_level)
    tokens = TokenStore(settings.tokens_path)
    check_bind(settings, tokens)
    sock = _socket(settings)  # before the store opens: a taken port leaves nothing open
    engine = engine or settings.open_engine()
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    auth = settings.auth_required or tokens.required()
    show_banner(banner(url, settings, auth=auth))
    log.info(
        "node listening",
        extra={"fields": {"url": url, "data_dir": settings.data_dir, "auth": auth}},
    )
    try:
        _server(settings, engine, tokens).run(sockets=[sock])
    finally:
        engine.close()
        log.info("node stopped")


class RunningNode:
    """A node serving on a background thread (tests, benchmarks); use as a context manager."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.tokens = TokenStore(settings.tokens_path)
        check_bind(settings, self.tokens)
        self._sock = _socket(settings)
        self.engine = engine or settings.open_engine()
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.server = _server(settings, self.engine, self.tokens)
        self.server.config.install_signal_handlers = False  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def app_state(self) -> NodeState:
        """The running app's shared state (lanes, ask workers, tokens, metrics)."""
        app = self.server.config.app
        assert isinstance(app, FastAPI)
        state: NodeState = app.state.node
        return state

    def start(self) -> RunningNode:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("node did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        self.engine.close()

    def __enter__(self) -> RunningNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_background(settings: Settings, engine: Engine | None = None) -> RunningNode:
    """A :class:`RunningNode` not yet started (``with start_background(s) as node: ...``)."""
    return RunningNode(settings, engine)
