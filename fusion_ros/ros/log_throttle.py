"""
Per-reason log throttling (ROS-free).

rclpy's throttle_duration_sec keys on the call site, so one line that logs every rejection reason
lets the first reason hide all the others. Here each reason has its own period, and the line that
gets through says how many of its kind were held back.
"""

from collections import OrderedDict
import re
import threading
import time
from typing import Callable, Optional

_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def reason_key(message: str) -> str:
    """Return the kind of a message: its text with numbers and quoted values blanked ('late by 3 ms' ~ '9 ms')."""
    return _VARIABLE.sub('#', message)[:120]


class ReasonThrottle:
    """At most one admitted line per key per period; thread-safe; remembers at most max_keys keys."""

    def __init__(self, period_s: float = 2.0, max_keys: int = 256, clock: Callable[[], float] = time.monotonic):
        self.period_s = period_s
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, list] = OrderedDict()   # key -> [last admitted time, suppressed since]

    def admit(self, key: str) -> Optional[int]:
        """None to hold the line back; otherwise how many lines of this key were held back since the last one."""
        now = self._clock()
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None and now - entry[0] < self.period_s:
                entry[1] += 1
                return None
            suppressed = entry[1] if entry is not None else 0
            self._keys[key] = [now, 0]
            self._keys.move_to_end(key)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
            return suppressed
