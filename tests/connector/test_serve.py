"""connector/serve.py's process-level set-up."""

from __future__ import annotations

import gc
import weakref

from connector.serve import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_the_startup_heap_is_frozen_but_its_garbage_is_not_kept():
    kept = Node()  # alive at start-up: frozen, never walked again
    lost_a, lost_b = Node(), Node()
    lost_a.other, lost_b.other = lost_b, lost_a  # a cycle only a collection frees
    gone = weakref.ref(lost_a)
    del lost_a, lost_b
    try:
        freeze_startup_heap()
        assert gone() is None  # collected first, not frozen for good
        assert gc.get_freeze_count() > 0 and not gc.is_finalized(kept)
        assert all(kept is not obj for obj in gc.get_objects(generation=2))  # out of reach
    finally:
        gc.unfreeze()  # the rest of the suite's objects go back to the collector
