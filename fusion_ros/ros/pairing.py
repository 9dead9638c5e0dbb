"""
Stamp pairing of the IR and visible streams, without ROS.

`ApproximatePairer` follows the semantics of message_filters'
ApproximateTimeSynchronizer for two inputs (that package cannot be installed
everywhere this node runs, so the policy lives here, pure and tested):
each stream keeps a queue keyed by stamp (a repeated stamp replaces the item
in place); a queue longer than `queue_size` drops its oldest stamp, which may
be the item just added, and then nothing fires; otherwise the other queue's
item closest in time (ties: the earlier inserted) is taken, and the pair fires
only if the difference is strictly below `slop_ns`, removing both. Unmatched
items stay until evicted.

`LatestPairer` is the fallback for rigs whose cameras do not share a clock:
every visible frame is paired with the newest IR frame.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

IR, VISIBLE = 0, 1
STREAM_NAMES = ('ir', 'visible')
# Upper edges (ms) of the |IR - visible| skew histogram; the last bin is open.
SKEW_BIN_EDGES_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)

Pair = tuple[Any, Any]


@dataclass
class PairingStats:
    """Counters the node publishes as diagnostics."""

    pairs: int = 0
    evictions: list[int] = field(default_factory=lambda: [0, 0])   # per stream
    skew_histogram: list[int] = field(default_factory=lambda: [0] * (len(SKEW_BIN_EDGES_MS) + 1))
    last_skew_ns: Optional[int] = None       # IR minus visible of the nearest candidate last seen

    def record_skew(self, skew_ns: int) -> None:
        """Count a fired pair's |skew| in the histogram."""
        ms = abs(skew_ns) / 1e6
        index = next((k for k, edge in enumerate(SKEW_BIN_EDGES_MS) if ms <= edge), len(SKEW_BIN_EDGES_MS))
        self.skew_histogram[index] += 1


def _check_stream(stream: int) -> None:
    if stream not in (IR, VISIBLE):
        raise ValueError(f'stream must be {IR} (ir) or {VISIBLE} (visible), got {stream!r}')


class ApproximatePairer:
    """Two-input approximate-time pairing; see the module docstring for the exact policy."""

    def __init__(self, queue_size: int, slop_ns: int):
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if slop_ns <= 0:
            raise ValueError(f'slop must be positive, got {slop_ns} ns')
        self.queue_size = int(queue_size)
        self.slop_ns = int(slop_ns)
        self.queues: tuple[dict[int, Any], dict[int, Any]] = ({}, {})
        self.stats = PairingStats()

    def add(self, stream: int, stamp_ns: int, item: Any) -> Optional[Pair]:
        """Store one item; return (ir_item, visible_item) if a pair fires, else None."""
        _check_stream(stream)
        mine, other = self.queues[stream], self.queues[1 - stream]
        mine[stamp_ns] = item
        while len(mine) > self.queue_size:
            del mine[min(mine)]
            self.stats.evictions[stream] += 1
        if stamp_ns not in mine or not other:
            return None
        best = min(other, key=lambda s: abs(s - stamp_ns))   # min keeps the earliest inserted on ties
        skew = (stamp_ns - best) if stream == IR else (best - stamp_ns)
        self.stats.last_skew_ns = skew
        if abs(best - stamp_ns) >= self.slop_ns:
            return None
        partner = other.pop(best)
        del mine[stamp_ns]
        self.stats.pairs += 1
        self.stats.record_skew(skew)
        return (item, partner) if stream == IR else (partner, item)

    def reset(self, keep_near: Optional[int] = None, within_ns: int = 0) -> None:
        """
        Drop queued frames after a clock jump, except those stamped within within_ns of keep_near.

        The frames kept belong to the new time line: when one stream jumps back, the other may
        already have queued its frames of that time, and they still need their partners.
        """
        def keep(stamp: int) -> bool:
            return keep_near is not None and abs(stamp - keep_near) < within_ns
        self.queues = tuple({s: item for s, item in queue.items() if keep(s)} for queue in self.queues)


class LatestPairer:
    """Pair each visible frame with the newest IR frame seen so far (no common clock needed)."""

    def __init__(self):
        self.latest_ir: Optional[tuple[int, Any]] = None
        self.stats = PairingStats()

    def add(self, stream: int, stamp_ns: int, item: Any) -> Optional[Pair]:
        """Keep the newest IR frame; every visible frame fires with it once one exists."""
        _check_stream(stream)
        if stream == IR:
            self.latest_ir = (stamp_ns, item)
            return None
        if self.latest_ir is None:
            return None
        skew = self.latest_ir[0] - stamp_ns
        self.stats.last_skew_ns = skew
        self.stats.pairs += 1
        self.stats.record_skew(skew)
        return self.latest_ir[1], item

    def reset(self, keep_near: Optional[int] = None, within_ns: int = 0) -> None:
        """Forget the newest IR frame after a clock jump, unless stamped within within_ns of keep_near."""
        if self.latest_ir is None or keep_near is None or abs(self.latest_ir[0] - keep_near) >= within_ns:
            self.latest_ir = None


def make_pairer(mode: str, queue_size: int, slop_s: float):
    """Create the pairer a node parameter names: 'approximate' or 'latest'."""
    if mode == 'approximate':
        return ApproximatePairer(queue_size, int(round(slop_s * 1e9)))
    if mode == 'latest':
        return LatestPairer()
    raise ValueError(f"pairing mode must be 'approximate' or 'latest', got {mode!r}")
