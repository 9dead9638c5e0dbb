"""Stamp pairing: message_filters ApproximateTime semantics for two inputs, and the latest-frame mode."""

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from fusion_ros.ros.pairing import ApproximatePairer, IR, LatestPairer, make_pairer, VISIBLE
from fusion_ros.ros.stamps import StampCheck, StampGuard, StampVerdict

MS = 1_000_000


def reference_add(queues, queue_size, slop, stream, stamp, item):
    """Literal restatement of message_filters' ApproximateTimeSynchronizer.add for two queues."""
    mine = queues[stream]
    mine[stamp] = item
    while len(mine) > queue_size:
        del mine[min(mine)]
    candidates = [(s, abs(s - stamp)) for s in queues[1 - stream] if abs(s - stamp) <= slop]
    if not candidates:
        return None
    for other_stamp, _ in sorted(candidates, key=lambda c: c[1]):
        stamps = {stream: stamp, 1 - stream: other_stamp}
        if max(stamps.values()) - min(stamps.values()) < slop and all(stamps[k] in queues[k] for k in (0, 1)):
            items = (queues[IR].pop(stamps[IR]), queues[VISIBLE].pop(stamps[VISIBLE]))
            return items
    return None


events = st.lists(st.tuples(st.sampled_from([IR, VISIBLE]), st.integers(0, 60)), max_size=80)


@given(events, st.integers(1, 6), st.integers(1, 12))
@settings(max_examples=300, deadline=None)
def test_matches_the_reference_semantics(sequence, queue_size, slop):
    pairer = ApproximatePairer(queue_size, slop)
    queues = ({}, {})
    for k, (stream, stamp) in enumerate(sequence):
        item = (stream, stamp, k)
        assert pairer.add(stream, stamp, item) == reference_add(queues, queue_size, slop, stream, stamp, item)
        assert pairer.queues == queues
        assert all(len(q) <= queue_size for q in pairer.queues)


@given(events, st.integers(1, 6), st.integers(1, 12))
@settings(max_examples=200, deadline=None)
def test_fired_pairs_are_within_slop_and_each_item_fires_once(sequence, queue_size, slop):
    pairer = ApproximatePairer(queue_size, slop)
    seen = set()
    for k, (stream, stamp) in enumerate(sequence):
        pair = pairer.add(stream, stamp, (stream, stamp, k))
        if pair:
            (s_ir, t_ir, k_ir), (s_vis, t_vis, k_vis) = pair
            assert (s_ir, s_vis) == (IR, VISIBLE)
            assert abs(t_ir - t_vis) < slop
            assert k_ir not in seen and k_vis not in seen
            seen |= {k_ir, k_vis}
    assert pairer.stats.pairs == len(seen) // 2 == sum(pairer.stats.skew_histogram)


def test_edge_cases_of_the_policy():
    pairer = ApproximatePairer(queue_size=2, slop_ns=10)
    assert pairer.add(IR, 100, 'a') is None
    assert pairer.add(VISIBLE, 110, 'v') is None, 'a difference equal to the slop must not fire'
    pairer.add(IR, 100, 'a2')
    assert pairer.queues[IR] == {100: 'a2'}, 'the same stamp replaces the stored item'
    assert pairer.add(VISIBLE, 105, 'w') == ('a2', 'w')
    assert pairer.queues[VISIBLE] == {110: 'v'}, 'unmatched older items stay'
    # ties: equal distance to 95 and 105 -> the earlier inserted (105) wins
    pairer = ApproximatePairer(queue_size=5, slop_ns=10)
    pairer.add(VISIBLE, 105, 'late')
    pairer.add(VISIBLE, 95, 'early')
    assert pairer.add(IR, 100, 'ir') == ('ir', 'late')


def test_an_item_evicted_on_arrival_never_fires():
    pairer = ApproximatePairer(queue_size=1, slop_ns=50)
    pairer.add(IR, 200, 'new')
    pairer.add(VISIBLE, 500, 'far')
    assert pairer.add(IR, 100, 'old') is None      # older than the queued 200: dropped at once
    assert pairer.stats.evictions == [1, 0]


def test_rate_9hz_ir_vs_30hz_visible():
    """A thermal camera at 9 Hz beside a 30 Hz visible camera, same clock, +-2 ms jitter."""
    rng = np.random.default_rng(0)
    ir = [(IR, int(k * 1e9 / 9 + rng.integers(-2, 3) * MS)) for k in range(90)]
    vis = [(VISIBLE, int(k * 1e9 / 30 + rng.integers(-2, 3) * MS)) for k in range(300)]
    pairer = ApproximatePairer(queue_size=10, slop_ns=20 * MS)
    pairs = []
    for stream, stamp in sorted(ir + vis, key=lambda e: e[1]):
        pair = pairer.add(stream, stamp, stamp)
        if pair:
            pairs.append(pair)
    assert len(pairs) >= 85            # nearly every IR frame finds a partner within 20 ms
    assert all(abs(a - b) < 20 * MS for a, b in pairs)
    assert pairer.stats.evictions[VISIBLE] > 150   # unpaired visible frames age out
    assert sum(pairer.stats.skew_histogram[5:]) == 0  # nothing above 20 ms


def test_latest_mode_reuses_the_newest_ir_frame():
    pairer = LatestPairer()
    assert pairer.add(VISIBLE, 0, 'v0') is None
    pairer.add(IR, 5, 'i1')
    pairer.add(IR, 9, 'i2')
    assert pairer.add(VISIBLE, 1000, 'v1') == ('i2', 'v1')
    assert pairer.add(VISIBLE, 2000, 'v2') == ('i2', 'v2')
    assert pairer.stats.last_skew_ns == 9 - 2000


@pytest.mark.parametrize('args, message', [
    (('approximate', 0, 0.02), 'queue_size must be >= 1'),
    (('approximate', 5, 0.0), 'slop must be positive'),
    (('exact', 5, 0.02), "'approximate' or 'latest'"),
])
def test_bad_settings_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        make_pairer(*args)


def test_bad_stream_is_named():
    with pytest.raises(ValueError, match='stream must be'):
        ApproximatePairer(3, 10).add(2, 0, None)


def test_reset_drops_the_old_time_line_and_keeps_the_counters():
    pairer = ApproximatePairer(5, 10)
    pairer.add(IR, 0, 'a')
    assert pairer.add(VISIBLE, 1, 'b') == ('a', 'b')
    pairer.add(IR, 100, 'c')
    pairer.reset()
    assert pairer.add(VISIBLE, 101, 'd') is None and pairer.stats.pairs == 1
    pairer.add(IR, 5000, 'old')
    pairer.add(IR, 20, 'new')                                # queued before the visible stream jumps back
    pairer.reset(keep_near=21, within_ns=50)
    assert pairer.queues == ({20: 'new'}, {})
    assert pairer.add(VISIBLE, 21, 'v') == ('new', 'v')
    latest = LatestPairer()
    latest.add(IR, 0, 'a')
    latest.reset(keep_near=30, within_ns=50)
    assert latest.add(VISIBLE, 1, 'b') == ('a', 'b')
    latest.reset(keep_near=500, within_ns=50)
    assert latest.add(VISIBLE, 2, 'c') is None


def test_stamp_guard_duplicates_late_frames_and_clock_jumps():
    guard = StampGuard(jump_threshold_ns=1000)
    assert guard.check(IR, 5000).verdict is StampVerdict.ACCEPT
    assert guard.check(IR, 5000).verdict is StampVerdict.DUPLICATE
    assert guard.check(IR, 4001) == StampCheck(StampVerdict.LATE, 999)
    assert guard.check(VISIBLE, 5000).verdict is StampVerdict.ACCEPT
    assert guard.check(IR, 4000) == StampCheck(StampVerdict.JUMP, 1000)          # threshold reached: a jump
    assert guard.check(VISIBLE, 10).verdict is StampVerdict.ACCEPT               # tracking restarted for both
    assert guard.check(IR, 4001).verdict is StampVerdict.ACCEPT
    with pytest.raises(ValueError, match='positive'):
        StampGuard(0)


@given(st.lists(st.tuples(st.sampled_from([IR, VISIBLE]), st.integers(-10**12, 10**12)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_one_outlier_stamp_never_blocks_more_than_itself(sequence):
    """Whatever came before, a stream stepping forward from its own accepted stamp is accepted."""
    guard = StampGuard(jump_threshold_ns=10**9)
    for stream, stamp in sequence:
        guard.check(stream, stamp)
    outlier = guard.check(IR, 10**15)                  # far future: accepted, or a jump
    assert outlier.verdict in (StampVerdict.ACCEPT, StampVerdict.JUMP)
    assert guard.check(IR, 5).verdict is StampVerdict.JUMP       # back to the real clock: one reset
    assert guard.check(IR, 6).verdict is StampVerdict.ACCEPT
