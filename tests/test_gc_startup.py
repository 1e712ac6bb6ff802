"""trainpipe/_gc.py: no cyclic garbage collection while a command imports and opens its store, then the
survivors frozen so later full collections skip them."""

from __future__ import annotations

import gc

import pytest

from trainpipe._gc import start_up_without_collection


@pytest.fixture
def gc_state():
    was = gc.isenabled()
    yield
    gc.unfreeze()
    if was:
        gc.enable()
    else:
        gc.disable()


def test_collection_is_off_inside_and_survivors_are_frozen(gc_state: None) -> None:
    gc.enable()
    gc.unfreeze()
    before = gc.get_freeze_count()
    with start_up_without_collection():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]  # container objects that survive the block
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(kept)
    assert not any(gc.is_tracked(x) and x in gc.get_objects(generation=2) for x in kept[:3])


def test_collection_stays_off_when_it_was_off_and_errors_pass_through(gc_state: None) -> None:
    gc.disable()
    with pytest.raises(RuntimeError, match="boom"), start_up_without_collection():
        raise RuntimeError("boom")
    assert not gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_thaw_makes_the_frozen_objects_collectable_again(gc_state: None) -> None:
    from trainpipe._gc import thaw

    with start_up_without_collection():
        kept = [[i] for i in range(100)]
    assert gc.get_freeze_count() >= len(kept)
    thaw()
    assert gc.get_freeze_count() == 0
