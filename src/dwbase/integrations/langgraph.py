"""``DWBaseStore``: a LangGraph ``BaseStore`` on DWBase, for long-term memory across threads.

A namespace is a world: ``("users", "u1")`` is the world ``langgraph/users/u1`` (the prefix
is ``world_prefix``; a label's characters other than letters, digits, ``_ - :`` are written
``.xx`` per UTF-8 byte, so every namespace has its own world and comes back unchanged). An
item is an atom whose payload holds its key and value. Atoms are immutable, so ``put`` over
an existing key stores a new atom that *supersedes* the previous one, and ``delete`` stores a
tombstone that supersedes it: ``get``, ``search`` and ``list_namespaces`` see the current
view, while ``replay`` of the world keeps every version.

Works on any :class:`dwbase.DWBaseAPI`: an embedded store or :class:`dwbase.Client` (a node,
where the token's capabilities decide which namespaces it sees). Needs the ``langchain``
extra (``pip install 'dwbase[langchain]'``).

>>> import dwbase
>>> store = DWBaseStore(dwbase.open(":memory:"))
>>> store.put(("users", "u1"), "lang", {"likes": "python"})
>>> store.get(("users", "u1"), "lang").value
{'likes': 'python'}
>>> store.put(("users", "u1"), "lang", {"likes": "rust"})   # supersedes the first
>>> [i.value for i in store.search(("users",))]
[{'likes': 'rust'}]
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from ..errors import ConflictError, InvalidInputError
from ..model import Atom
from ..protocol import DWBaseAPI

log = logging.getLogger("dwbase.integrations.langgraph")

ITEM_LABEL = "langgraph:item"
_PLAIN = re.compile(r"[A-Za-z0-9_:-]")
_ESCAPE = re.compile(r"\.([0-9a-f]{2})")
ASK_LIMIT = 1000  # candidates scored for a search with a query, per namespace


def key_label(key: str) -> str:
    """The label every atom of item ``key`` carries (a digest: keys may be long or odd)."""
    return "langgraph:key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def encode_label(label: str) -> str:
    return "".join(
        ch if _PLAIN.fullmatch(ch) else "".join(f".{b:02x}" for b in ch.encode("utf-8"))
        for ch in label
    )


def decode_label(text: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == ".":
            m = _ESCAPE.match(text, i)
            if m is None:
                raise ValueError(f"not an encoded namespace label: {text!r}")
            raw.append(int(m.group(1), 16))
            i += 3
        else:
            raw += text[i].encode("ascii")
            i += 1
    return raw.decode("utf-8")


@dataclass(slots=True)
class _Current:
    """What is current of one key: the atom of its latest put, and when its life began."""

    atom: Atom
    value: dict[str, Any]
    born: Atom  # the first put after the key was last deleted (or ever)


class DWBaseStore(BaseStore):
    """LangGraph's ``BaseStore`` over a DWBase store (see the module docstring).

    ``db``: an embedded store or a :class:`dwbase.Client`; ``world_prefix``: where the
    namespaces live; ``worker``: the writer of the atoms (a node uses its token's worker).
    """

    __slots__ = ("db", "importance", "worker", "world_prefix")

    def __init__(
        self,
        db: DWBaseAPI,
        *,
        world_prefix: str = "langgraph/",
        worker: str = "langgraph",
        importance: float = 0.5,
    ) -> None:
        self.db = db
        self.world_prefix = world_prefix
        self.worker = worker
        self.importance = importance

    # ------------------------------------------------------------------ namespaces <-> worlds

    def world(self, namespace: Sequence[str]) -> str:
        """The world that holds ``namespace``."""
        if not namespace:
            raise InvalidInputError("a namespace needs at least one label", field="namespace")
        return self.world_prefix + "/".join(encode_label(label) for label in namespace)

    def namespace(self, world: str) -> tuple[str, ...] | None:
        """The namespace ``world`` holds, or ``None`` if it is not one of this store's."""
        if not world.startswith(self.world_prefix) or world == self.world_prefix:
            return None
        try:
            return tuple(decode_label(p) for p in world[len(self.world_prefix) :].split("/"))
        except (ValueError, UnicodeDecodeError):
            return None

    def _namespaces(self) -> list[tuple[tuple[str, ...], str]]:
        out = []
        for world in self.db.list_worlds():
            ns = self.namespace(world)
            if ns is not None:
                out.append((ns, world))
        return out

    # ------------------------------------------------------------------ batches

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Reads see the store as it was before the batch; then its puts are stored in one
        transaction (the last put of a key in the batch wins), as LangGraph's stores do."""
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                puts[(tuple(op.namespace), op.key)] = op
                results.append(None)
            else:
                raise InvalidInputError(f"unknown store operation {type(op).__name__}")
        if puts:
            self._write(list(puts.values()))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` on a worker thread (the DWBase API it calls blocks)."""
        return await asyncio.to_thread(self.batch, list(ops))

    # ------------------------------------------------------------------ reads

    def _history(self, world: str, key: str | None = None) -> list[Atom]:
        """Every item atom of ``world`` (or of ``key`` only), in the order they were stored."""
        return self.db.replay(world, labels=[key_label(key) if key is not None else ITEM_LABEL])

    def _current(self, world: str, key: str | None = None) -> dict[str, _Current]:
        return _current_of(self._history(world, key))

    def _item(self, namespace: tuple[str, ...], key: str, cur: _Current) -> Item:
        return Item(
            value=cur.value,
            key=key,
            namespace=namespace,
            created_at=datetime.fromisoformat(cur.born.timestamp),
            updated_at=datetime.fromisoformat(cur.atom.timestamp),
        )

    def _get(self, op: GetOp) -> Item | None:
        namespace = tuple(op.namespace)
        cur = self._current(self.world(namespace), op.key).get(op.key)
        return self._item(namespace, op.key, cur) if cur is not None else None

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        found: list[tuple[str, float | None, tuple[str, ...], str, _Current]] = []
        for namespace, world in self._namespaces():
            if namespace[: len(prefix)] != prefix:
                continue
            history = self._history(world)
            current = _current_of(history)
            if op.filter:
                current = {k: c for k, c in current.items() if _matches(c.value, op.filter)}
            if not current:
                continue
            scores = self._scores(world, op.query) if op.query else {}
            first = history[0].id  # when the namespace was first written
            for key, cur in current.items():
                found.append((first, scores.get(cur.atom.id), namespace, key, cur))
        # Namespaces in the order they were first written, keys in the order they were born
        # (LangGraph's InMemoryStore order); with a query, scored items first, best first.
        found.sort(key=lambda f: (f[0], f[4].born.id))
        if op.query:
            found.sort(key=lambda f: (f[1] is None, -(f[1] or 0.0)))
        page = found[op.offset : op.offset + op.limit]
        return [
            SearchItem(
                namespace=ns,
                key=key,
                value=cur.value,
                created_at=datetime.fromisoformat(cur.born.timestamp),
                updated_at=datetime.fromisoformat(cur.atom.timestamp),
                score=score,
            )
            for _, score, ns, key, cur in page
        ]

    def _scores(self, world: str, query: str) -> dict[str, float]:
        answer = self.db.ask(world, query, labels=[ITEM_LABEL], limit=ASK_LIMIT, current_only=True)
        return {h.atom.id: h.score for h in answer.hits}

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = [ns for ns, _ in self._namespaces()]
        for cond in op.match_conditions or ():
            namespaces = [ns for ns in namespaces if _namespace_matches(cond, ns)]
        if op.max_depth is not None:
            namespaces = [ns[: op.max_depth] for ns in namespaces]
        return sorted(set(namespaces))[op.offset : op.offset + op.limit]

    # ------------------------------------------------------------------ writes

    def _write(self, puts: list[PutOp]) -> None:
        atoms: list[dict[str, Any]] = []
        for op in puts:
            namespace = tuple(op.namespace)
            world = self.world(namespace)
            previous = self._current(world, op.key).get(op.key)
            links = [{"target": previous.atom.id, "kind": "supersedes"}] if previous else []
            if op.value is None:
                if previous is None:
                    continue  # nothing to delete
                payload: dict[str, Any] = {"key": op.key, "deleted": True}
            else:
                payload = {"key": op.key, "namespace": list(namespace), "value": op.value}
            atoms.append(
                {
                    "world": world,
                    "worker": self.worker,
                    "kind": "observation",
                    "importance": self.importance,
                    "payload": payload,
                    "labels": [ITEM_LABEL, key_label(op.key)],
                    "links": links,
                }
            )
        if not atoms:
            return
        ids = self.db.remember_batch(atoms)
        held = [(a, i) for a, i in zip(atoms, ids, strict=True) if i.held]
        if held:
            atom, aid = held[0]
            raise ConflictError(
                f"put of key {atom['payload']['key']!r} was held in quarantine "
                f"({aid.held_reason}); it is not visible until an operator releases it",
                id=str(aid),
            )


def _current_of(history: list[Atom]) -> dict[str, _Current]:
    """The current item of each key in an item history, in the order the keys were born."""
    out: dict[str, _Current] = {}
    for atom in history:
        payload = atom.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("key"), str):
            continue
        k = payload["key"]
        value = payload.get("value")
        if payload.get("deleted") or not isinstance(value, dict):
            out.pop(k, None)
            continue
        out[k] = _Current(atom, value, out[k].born if k in out else atom)
    return dict(sorted(out.items(), key=lambda kv: kv[1].born.id))


def _namespace_matches(cond: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(cond.path)
    if len(namespace) < len(path):
        return False
    if cond.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif cond.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise InvalidInputError(f"unknown namespace match type {cond.match_type!r}")
    return all(p == "*" or n == p for n, p in pairs)


def _matches(value: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
    """LangGraph's filter: exact values (nested objects and lists too) and the operators
    ``$eq $ne $gt $gte $lt $lte``."""
    return all(_compare(value.get(k), want) for k, want in flt.items())


def _compare(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if any(k.startswith("$") for k in want):
            return all(_operator(have, op, arg) for op, arg in want.items())
        return isinstance(have, dict) and all(_compare(have.get(k), v) for k, v in want.items())
    if isinstance(want, list | tuple):
        return (
            isinstance(have, list | tuple)
            and len(have) == len(want)
            and all(_compare(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _operator(have: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return bool(have == arg)
    if op == "$ne":
        return bool(have != arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        try:
            a, b = float(have), float(arg)
        except (TypeError, ValueError):
            return False
        return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]
    raise InvalidInputError(f"unknown filter operator {op!r}; use $eq $ne $gt $gte $lt $lte")
