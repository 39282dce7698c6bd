"""Units of work by compensation: every write inside a unit records how to undo itself.

MongoDB has multi-document transactions only on replica sets (and mongomock has
none), so :meth:`MongoStore.atomic` gives all-or-nothing by compensation: each
repository write made inside a unit records an *undo action* (built from the
document it captured with ``find_one_and_update(..., return_document=BEFORE)``,
``find_one_and_replace``/``find_one_and_delete``, or from the guard it wrote
under), and when the block raises the actions run in reverse order.

Units are per thread (a store is shared by threads): a thread records into its
own stack of frames only. A nested block is a savepoint: its frame is undone
when it raises, and merged into the enclosing frame when it ends normally.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pymongo.errors
from pymongo.collection import Collection

__all__ = ["UnitOfWork", "reinsert", "restore_fields", "take_all"]

log = logging.getLogger("mindmesh_auth")

Doc = dict[str, Any]
Undo = Callable[[], object]


class UnitOfWork:
    """The open units of one store: per thread, a stack of frames of ``(label, undo)``."""

    def __init__(self, serial: AbstractContextManager[Any]) -> None:
        self._serial = serial
        self._local = threading.local()

    def _frames(self) -> list[list[tuple[str, Undo]]]:
        frames: list[list[tuple[str, Undo]]] | None = getattr(self._local, "frames", None)
        if frames is None:
            frames = self._local.frames = []
        return frames

    @property
    def open(self) -> bool:
        """Whether the calling thread is inside a unit (then writes capture what they replace)."""
        return bool(getattr(self._local, "frames", None))

    def record(self, label: str, undo: Undo) -> None:
        """Remember ``undo`` for the innermost open unit of this thread; no-op outside a unit.

        ``label`` names the write (``"users.add"``): it is all an undo failure logs.
        """
        frames: list[list[tuple[str, Undo]]] | None = getattr(self._local, "frames", None)
        if frames:
            frames[-1].append((label, undo))

    @contextmanager
    def writing(self, label: str, undo: Undo) -> Iterator[None]:
        """Record ``undo`` for the write made in the block once it succeeded, and ALSO when
        the connection failed mid-write (the write may have run: the reply was lost).

        Only for undo actions that are harmless when the write never ran (a delete
        guarded by the exact key this write created). A refused write
        (duplicate key, validation) records nothing.
        """
        try:
            yield
        except pymongo.errors.ConnectionFailure:
            self.record(label, undo)
            raise
        self.record(label, undo)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        frames = self._frames()
        frames.append([])
        try:
            yield
        except BaseException:
            self._undo(frames.pop())
            raise
        else:
            done = frames.pop()
            if frames:  # a savepoint released: the enclosing unit's rollback undoes these too
                frames[-1].extend(done)

    def _undo(self, actions: list[tuple[str, Undo]]) -> None:
        """Run the undo actions newest first, best effort; failures are logged once, together."""
        failed: list[str] = []
        for label, undo in reversed(actions):
            try:
                with self._serial:
                    undo()
            except Exception as exc:  # best effort: the block's own exception is what propagates
                failed.append(f"{label} ({type(exc).__name__})")
        if failed:
            # Labels and exception classes only: a driver message may quote a key (an email, a hash).
            log.error(
                "A failed unit of work could not undo %d of its %d writes: %s.",
                len(failed),
                len(actions),
                ", ".join(failed),
            )


# -- helpers the repositories build their undo actions with -------------------------
def restore_fields(before: Mapping[str, Any], fields: tuple[str, ...]) -> Doc:
    """The update that puts ``fields`` back as they were in ``before`` (absent ones unset)."""
    update: Doc = {}
    kept = {f: before[f] for f in fields if f in before}
    gone = {f: "" for f in fields if f not in before}
    if kept:
        update["$set"] = kept
    if gone:
        update["$unset"] = gone
    return update


def take_all(collection: Collection[Doc], flt: Mapping[str, Any], into: list[Doc]) -> None:
    """Delete every document matching ``flt`` one at a time, appending each deleted
    document to ``into`` (so a failure part-way still knows what it deleted)."""
    while True:
        doc = collection.find_one_and_delete(dict(flt))
        if doc is None:
            return
        into.append(doc)


def reinsert(collection: Collection[Doc], docs: list[Doc]) -> None:
    """Put deleted documents back. A duplicate key means a newer document took the
    place (or it is back already): the newer one is kept."""
    for doc in docs:
        try:
            collection.insert_one(dict(doc))
        except pymongo.errors.DuplicateKeyError:
            continue
