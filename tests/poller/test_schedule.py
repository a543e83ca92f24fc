"""Slots and shares (daemons/poller/schedule.py): a target's slots are the same whoever
polls it, and a poller joining moves only its own share of the targets."""

from __future__ import annotations

from collections import Counter

from daemons.poller import schedule


def test_slots_are_fixed_and_strictly_after() -> None:
    for name in ("olt-1", "t042", "sw-core"):
        first = schedule.next_slot(name, 60.0, 1_000_000.0)
        assert 1_000_000.0 < first <= 1_000_060.0
        assert (first - schedule.offset(name, 60.0)) % 60.0 == 0.0
        assert schedule.next_slot(name, 60.0, first) == first + 60.0  # strictly after
        assert schedule.next_slot(name, 60.0, first - 0.001) == first


def test_rendezvous_shares_are_even_and_move_little() -> None:
    targets = [f"t{i:04d}" for i in range(3000)]
    two = {t: schedule.owner(t, ["a", "b"]) for t in targets}
    three = {t: schedule.owner(t, ["a", "b", "c"]) for t in targets}
    shares = Counter(three.values())
    assert min(shares.values()) > 900 and max(shares.values()) < 1100
    moved = [t for t in targets if two[t] != three[t]]
    assert all(three[t] == "c" for t in moved)  # only to the newcomer
    assert 900 < len(moved) < 1100
    assert schedule.owner("x", []) is None
