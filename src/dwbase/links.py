"""Which links a write may carry: a link that ranks acts only inside its own world.

``supersedes``, ``contradicts`` and ``confirms`` change how their target ranks and whether it
is in the current view, so each must name an atom of the *same* world as the atom that
carries it: the writer was already allowed to write that world, so a link can never reach
into a world the writer may not write. A write that breaks this is refused (400
``invalid_input``) rather than stored with its link ignored: a stored link whose effect
silently depends on where its target lives would be a trap. The message is the same for a
target in another world and for an id that does not exist, so a refusal tells the writer
nothing about worlds it cannot read.

A local write must name a stored target (or one in the same batch); a peer's atoms
(``allow_unknown=True``) may name a target that has not arrived yet, since replication does
not promise order. ``references`` links change no ranking and may name any id.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import InvalidInputError
from .model import Atom
from .storage.base import Storage

RANKING_LINKS = frozenset({"supersedes", "contradicts", "confirms"})


def check_links(storage: Storage, atoms: Sequence[Atom], *, allow_unknown: bool = False) -> None:
    """Raise :class:`InvalidInputError` if a ranking link of ``atoms`` leaves its world."""
    batch = {a.id: a.world for a in atoms}
    for i, atom in enumerate(atoms):
        for link in atom.links:
            if link.kind not in RANKING_LINKS:
                continue
            world = batch.get(link.target)
            if world is None:
                stored = storage.get(link.target)
                if stored is None and allow_unknown:
                    continue
                world = stored.atom.world if stored is not None else None
            if world != atom.world:
                where = f"atom {i}: " if len(atoms) > 1 else ""
                raise InvalidInputError(
                    f"{where}{link.kind} link target {link.target!r} is not an atom of world "
                    f"{atom.world!r}; supersedes, contradicts and confirms act only within "
                    "one world",
                    field="links",
                    target=link.target,
                    **({"index": i} if len(atoms) > 1 else {}),
                )
