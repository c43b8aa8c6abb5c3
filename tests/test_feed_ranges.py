"""The copy reads partition key ranges in turns and the purge deletes across logical partitions in turns."""

from __future__ import annotations

import itertools

from include.cosmos_archiver.source.feed_ranges import across_partitions, in_turns, range_key


def test_streams_are_read_in_turns_until_all_are_drained():
    turns = list(in_turns([iter("abc"), iter(""), iter("xy")]))
    assert turns == [(0, "a"), (2, "x"), (0, "b"), (2, "y"), (0, "c")]


def test_the_purge_order_takes_one_record_of_each_customer_in_turn():
    keys = [(f"c{c}", f"r{i}") for c in range(4) for i in range(3 if c else 6)]
    order = across_partitions(reversed(keys))
    assert sorted(order) == sorted(keys) and order == across_partitions(keys)  # every key once, deterministic
    first_round = [pk for pk, _ in order[:4]]
    assert sorted(first_round) == ["c0", "c1", "c2", "c3"]  # key order would have deleted c0's six first
    assert all(a[0] != b[0] for a, b in itertools.pairwise(order[:12]))


def test_range_keys_are_stable_texts():
    assert range_key(None) == "all"
    assert range_key({"Range": {"min": "", "max": "FF"}}) == range_key({"Range": {"max": "FF", "min": ""}})
