"""
Per-stream stamp checks before pairing: duplicates, late frames and clock jumps (ROS-free).

Camera stamps are not always monotonic. A frame delivered twice repeats its stamp; a reordered
frame is a little older than the last one; and whole clocks jump: a bag played in a loop, a
simulator reset, a camera clock that glitches for one frame. The policy, in the order ROS users
expect from a clock jump:

* equal to the stream's last stamp: a duplicate, skipped (one frame in, at most one output);
* older by less than the jump threshold: a late frame, skipped;
* older by the threshold or more: a clock jump. Tracking of *every* stream restarts from this
  frame and the caller drops the queued frames of the old time line (those within the threshold
  of the new stamp are kept: the other stream may have sent its new frames first). A bag loop
  costs one reset (both streams jump back, the second finds tracking already restarted), and one
  frame stamped far in the future costs one reset instead of poisoning every later frame.
"""

from dataclasses import dataclass
import enum
from typing import Optional


class StampVerdict(enum.Enum):
    """What to do with a frame, judged by its stamp alone."""

    ACCEPT = 'accept'
    DUPLICATE = 'duplicate'
    LATE = 'late'
    JUMP = 'jump'            # accept, after resetting every stream's tracking (and the caller's pairing)


@dataclass(frozen=True)
class StampCheck:
    """A verdict and how far the stamp went back from the stream's last one (0 unless late or jump)."""

    verdict: StampVerdict
    back_ns: int = 0


class StampGuard:
    """Last accepted stamp per stream, and the verdict for each new one; not thread-safe (callers lock)."""

    def __init__(self, jump_threshold_ns: int, streams: int = 2):
        if jump_threshold_ns <= 0:
            raise ValueError(f'the clock jump threshold must be positive, got {jump_threshold_ns} ns')
        self.jump_threshold_ns = int(jump_threshold_ns)
        self._last: list[Optional[int]] = [None] * streams

    def check(self, stream: int, stamp_ns: int) -> StampCheck:
        """Judge one stamp and record it when the frame is to be used."""
        last = self._last[stream]
        if last is not None and stamp_ns == last:
            return StampCheck(StampVerdict.DUPLICATE)
        if last is not None and stamp_ns < last:
            back = last - stamp_ns
            if back < self.jump_threshold_ns:
                return StampCheck(StampVerdict.LATE, back)
            self.reset()
            self._last[stream] = stamp_ns
            return StampCheck(StampVerdict.JUMP, back)
        self._last[stream] = stamp_ns
        return StampCheck(StampVerdict.ACCEPT)

    def reset(self) -> None:
        """Forget every stream's last stamp (new session, or a clock jump)."""
        self._last = [None] * len(self._last)
