"""Observe: publish built atoms without storing them, and subscriptions to new atoms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidInputError
from ..model import Atom, AtomFilter, StoredAtom, validate_atom, validate_world
from ..options import Options
from ..security.caps import FULL_ACCESS, Caller
from ..storage.base import Storage
from ..stream import Hub, SubscriptionStats
from ..stream.feed import Feed
from ..timeutil import now_micros, parse_instant
from . import filters


class Observing:
    """``observe`` and the ``observe_*`` subscriptions, fed by the store's :class:`Feed`."""

    def __init__(
        self,
        *,
        storage: Storage,
        options: Options,
        hub: Hub,
        feed: Feed,
        sync: Callable[[], None],
        watch: Callable[[], None],
    ) -> None:
        self._storage = storage
        self._options = options
        self._hub = hub
        self._feed = feed
        self._sync = sync
        self._watch = watch
        self._last_time: tuple[str, int] = ("", 0)  # the last event time read, for accepts

    def observe(self, atom: Atom | Mapping[str, Any], *, caller: Caller | None = None) -> int:
        """Publish an already-built atom to observers without storing it; returns receivers."""
        who = caller or FULL_ACCESS
        built = (
            atom
            if isinstance(atom, Atom)
            else validate_atom(
                atom,
                max_payload_bytes=self._options.max_payload_bytes,
                now_us=now_micros(self._options.clock),
            )
        )
        who.require_write(
            built.world, kind=built.kind, labels=built.labels, importance=built.importance
        )
        return self._hub.publish(built, None)

    def start(
        self,
        world: str | None = None,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        after: str | None = None,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
        caller: Caller | None = None,
        waker: Callable[[], None] | None = None,
    ) -> str:
        """Subscribe to new atoms. ``after=<atom id>`` first delivers stored atoms after it.

        With a ``waker`` the subscription is waited on, not polled (see
        :mod:`dwbase.stream.hub`); the engine then looks for other processes' atoms for it.
        """
        who = caller or FULL_ACCESS
        flt = filters.as_filter(filter)
        world = world or flt.world or None
        if world is not None:
            validate_world(world)
            who.require_read(world)
        spec = filters.spec(flt, None)
        # Called for every subscription on every publish: with no filter nothing more to read,
        # and an event time is read once per atom (the last one is kept) for all of them.
        open_spec = spec.is_open
        timed = spec.since_us is not None or spec.until_us is not None

        def accepts(atom: Atom, seq: int | None) -> bool:
            if world is not None and atom.world != world:
                return False
            if not who.can_read(atom.world):
                return False
            if open_spec:
                return True
            ts_us = self._event_time(atom.timestamp) if timed else 0
            fake = StoredAtom(atom=atom, seq=seq or 0, ts_us=ts_us, recorded_us=0, text="")
            return spec.matches(fake)

        backlog_after = None
        if after is not None:
            if world is None:
                raise InvalidInputError("after= needs a world", field="after")
            base, quarantined = filters.split_world(world)
            cursor_seq = filters.cursor_seq(self._storage, after, base)

            def backlog_after(top: int) -> list[StoredAtom]:
                rows = self._storage.scan(base, spec, quarantined=quarantined, after_seq=cursor_seq)
                return [s for s in rows if s.seq <= top]

        self._sync()
        handle = self._feed.subscribe(
            accepts, backlog_after, capacity=capacity, drop_policy=drop_policy, waker=waker
        )
        if waker is not None:
            self._watch()
        return handle

    def _event_time(self, timestamp: str) -> int:
        last = self._last_time
        if last[0] != timestamp:
            last = self._last_time = (timestamp, parse_instant(timestamp))
        return last[1]

    def poll(self, handle: str, max: int = 100) -> list[Atom]:
        """Up to ``max`` atoms queued for ``handle``, whichever process stored them."""
        self._sync()
        return self._hub.poll(handle, max)

    def stop(self, handle: str) -> None:
        self._hub.stop(handle)

    def stats(self, handle: str) -> SubscriptionStats:
        return self._hub.stats(handle)
