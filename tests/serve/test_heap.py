"""A serving replica's collector: start-up frozen, young objects collected less often, cycles still freed."""

import gc
import weakref

from swarm_route.serve import heap


class _Node:
    pass


def test_settle_freezes_start_up_and_raises_the_young_threshold_but_cycles_are_still_collected():
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0 and gc.get_threshold() == (heap.YOUNG, *before[1:])
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle made after start-up is garbage like any other
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
