"""Ids chosen by the writer (``NewAtom.id``): a retried write stores nothing twice.

An atom id is never reused, and writing an atom whose id already exists is a no-op. For a
local write that names its own id (a UUID, see :func:`dwbase.model.validate_client_id`):

* the id belongs to a stored atom of the same world: nothing is stored and the answer is that
  atom's id with its quarantine state, so a retried request answers as the first one did (the
  first write wins; a retry is expected to resend the same atom);
* the id belongs to an atom of another world, or to an atom that was removed: ``ConflictError``
  (409), which names neither that world nor anything the atom holds, so an id cannot be used to
  overwrite or read an atom the writer may not see.

The engine calls :func:`known` before it stores a batch (so a conflict found there stores
nothing) and :func:`settle` after, which also covers an id taken by another writer between the
two and an id repeated within one batch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .errors import ConflictError
from .model import Atom, StoredAtom
from .results import AtomId
from .storage.base import NewRecord, Storage


def taken(atom_id: str, index: int | None = None, *, stored_others: bool = False) -> ConflictError:
    """The conflict for an id that belongs to an atom this write may not touch."""
    message = (
        f"atom id {atom_id!r} is already taken by another atom (ids are never reused); "
        "choose a new id, or leave id out to let DWBase choose one"
    )
    if stored_others:
        message += "; the other atoms of this batch were stored, resend them to get their ids"
    details: dict[str, object] = {"id": atom_id}
    if index is not None:
        details["index"] = index
    return ConflictError(message, **details)


def answer(s: StoredAtom) -> AtomId:
    """The id a write of ``s`` answers with: its quarantine state and its own world."""
    return AtomId.make(s.atom.id, s.quarantine, s.atom.world)


def known(storage: Storage, atoms: Sequence[Atom], chosen: Collection[int]) -> dict[int, AtomId]:
    """Answers for the atoms at ``chosen`` positions whose id is already stored in their world.

    Raises :func:`taken` for an id stored in another world, or named twice in ``atoms`` for
    two different worlds; nothing has been stored then.
    """
    if not chosen:
        return {}
    found = storage.get_many([atoms[i].id for i in chosen])
    out: dict[int, AtomId] = {}
    world_of: dict[str, str] = {}
    for i in sorted(chosen):
        a = atoms[i]
        s = found.get(a.id)
        if s is not None:
            if s.atom.world != a.world:
                raise taken(a.id, i if len(atoms) > 1 else None)
            out[i] = answer(s)
        elif world_of.setdefault(a.id, a.world) != a.world:
            raise taken(a.id, i if len(atoms) > 1 else None)
    return out


def settle(
    storage: Storage, records: Sequence[NewRecord], stored: Sequence[StoredAtom]
) -> list[AtomId | ConflictError]:
    """For each record written: its answer, or the conflict if its id was not free after all.

    A record not in ``stored`` had an id that was already taken when the transaction ran: by
    an earlier record of the same batch, by another writer since :func:`known` looked, or by a
    removed atom. It answers as that atom does if the atom is of the same world.
    """
    by_id = {s.atom.id: s for s in stored}
    out: list[AtomId | ConflictError] = []
    missing = [r.atom.id for r in records if r.atom.id not in by_id]
    if missing:
        by_id.update(storage.get_many(missing))
    for rec in records:
        s = by_id.get(rec.atom.id)
        if s is not None and s.atom.world == rec.atom.world:
            out.append(answer(s))
        else:
            out.append(taken(rec.atom.id))
    return out
