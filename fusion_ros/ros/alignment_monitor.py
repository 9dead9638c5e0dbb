"""
The node's watch on its registration: whether the running alignment score stays near the calibrated one.

`fusion-ros calibrate` writes the rig's alignment score (registration.calibrated_score). Every Nth
fused pair the node scores how well the registered IR frame's edges lie on the visible ones
(core.calibration.score) and keeps the last few scores. The median of those (one dull frame, a
blank sky, must not raise a warning) falling below a fraction of the calibrated score is reported
as a WARN on /diagnostics: a camera was knocked, or the rig was never calibrated for this mount.
Pure and lock-free: the inference thread records, the diagnostics timer reads.
"""

from collections import deque
import math
from statistics import median
from typing import Optional

# Scores kept; the median over them is what is compared.
WINDOW = 5
# Scores needed before a verdict (one or two could be a passing blank scene).
MIN_SCORES = 3


class AlignmentMonitor:
    """Count pairs, keep the recent alignment scores, and say when they fell well below the calibrated one."""

    def __init__(self) -> None:
        """Start disabled (no scoring until configure gives an interval)."""
        self.every = 0
        self.calibrated = 0.0
        self.warn_ratio = 0.5
        self._count = 0
        self.scored = 0     # scores recorded since start
        self._scores: deque = deque(maxlen=WINDOW)

    def configure(self, every: int, calibrated: float, warn_ratio: float) -> None:
        """Apply the parameters; a changed calibration forgets the scores measured against the old one."""
        if (every, calibrated, warn_ratio) != (self.every, self.calibrated, self.warn_ratio):
            self._scores = deque(maxlen=WINDOW)
        self.every, self.calibrated, self.warn_ratio = every, calibrated, warn_ratio

    def due(self) -> bool:
        """Count one fused pair; True when this one is to be scored."""
        self._count += 1
        return self.every > 0 and self._count % self.every == 0

    def record(self, score: float) -> None:
        """Keep one score (a non-finite one is dropped)."""
        if math.isfinite(score):
            self._scores.append(float(score))
            self.scored += 1

    def current(self) -> Optional[float]:
        """Median of the recent scores, or None before any."""
        scores = list(self._scores)
        return median(scores) if scores else None

    def problem(self) -> Optional[str]:
        """Return the WARN message when the recent scores sit well below the calibrated score, else None."""
        scores = list(self._scores)
        if self.calibrated <= 0 or len(scores) < MIN_SCORES:
            return None
        value = median(scores)
        if value >= self.warn_ratio * self.calibrated:
            return None
        return (f'alignment score {value:.3f} (median of the last {len(scores)}) is below '
                f'{self.warn_ratio:g} x the calibrated {self.calibrated:.3f}: has a camera moved? '
                'Re-run fusion-ros calibrate')

    def report(self) -> dict[str, str]:
        """
        Diagnostic key/values (empty while scoring is off).

        No key contains 'rate': the health tests read every key with 'rate' in it as an event rate.
        """
        if self.every <= 0:
            return {}
        value = self.current()
        return {'alignment score': 'none yet' if value is None else f'{value:.3f}',
                'alignment score at calibration': f'{self.calibrated:.3f}' if self.calibrated > 0 else 'not set'}
