"""Rates, latency percentiles and counters the node reports on /diagnostics, and its health inputs (ROS-free)."""

from collections import deque
import threading
import time
from typing import Callable, Optional

import numpy as np

from fusion_ros.ros.health import HealthSnapshot
from fusion_ros.ros.pairing import SKEW_BIN_EDGES_MS, PairingStats


class RateMeter:
    """
    Events per second over the last window_s seconds.

    Judged against the current time, so a stream that stops falls to 0 within one window
    instead of keeping the last rate it had; at most max_events are kept.
    """

    def __init__(self, window_s: float = 5.0, max_events: int = 1000, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._events: deque = deque(maxlen=max_events)
        self._since = clock()

    def add(self, t: Optional[float] = None) -> None:
        """Record one event (now by default)."""
        self._events.append(self._clock() if t is None else t)

    def rate(self, now: Optional[float] = None) -> float:
        """Events per second in the window ending now; 0 when none."""
        now = self._clock() if now is None else now
        start = now - self.window_s
        while self._events and self._events[0] < start:
            self._events.popleft()
        if not self._events:
            return 0.0
        if len(self._events) == self._events.maxlen:   # the window holds more than we keep: measure what we kept
            span = now - self._events[0]
        else:
            span = min(self.window_s, now - self._since)
        return len(self._events) / span if span > 0 else 0.0

    def reset(self) -> None:
        """Forget all events (a new session)."""
        self._events.clear()
        self._since = self._clock()


class NodeStats:
    """Thread-safe counters, rate meters and the latency window, plus the times the health model judges."""

    def __init__(self, window: int = 300, rate_window_s: float = 5.0):
        self._lock = threading.Lock()
        self.rates = [RateMeter(rate_window_s), RateMeter(rate_window_s), RateMeter(rate_window_s)]  # ir, vis, out
        self.latencies_ms: deque = deque(maxlen=window)
        self.overhead_ms: deque = deque(maxlen=window)
        self.pairs = self.dropped = self.rejected = self.skipped_pairs = self.inference_failures = 0
        self.published_count = 0
        self.qos_incompatible = self.clock_jumps = self.downscaled = self.worker_restarts = 0
        self.bad_payloads = 0     # compressed frames that could not be decoded (also counted as skipped)
        self.frames_received = [0, 0]
        self.active_since: Optional[float] = None
        self.last_frame: list[Optional[float]] = [None, None]
        self.last_pair: Optional[float] = None
        self.last_publish: Optional[float] = None
        self.busy_since: Optional[float] = None
        self.last_skip: Optional[str] = None
        self.last_failure: Optional[str] = None
        self._failures_reported = 0
        self._worker_death: Optional[str] = None

    def activated(self) -> None:
        """Start a session: the health model measures silence from now."""
        with self._lock:
            self.active_since = time.monotonic()
            self.last_frame = [None, None]
            self.last_pair = self.last_publish = self.busy_since = None
            for meter in self.rates:
                meter.reset()

    def deactivated(self) -> None:
        """End the session: nothing is expected while inactive."""
        with self._lock:
            self.active_since = None

    def frame_in(self, stream: int) -> None:
        """Record an input frame arrival."""
        now = time.monotonic()
        with self._lock:
            self.rates[stream].add(now)
            self.last_frame[stream] = now
            self.frames_received[stream] += 1

    def pair_formed(self) -> None:
        """Record that the pairer fired."""
        with self._lock:
            self.pairs += 1
            self.last_pair = time.monotonic()

    def skipped(self, reason: str, paired: bool) -> None:
        """
        Record a frame skipped for a reason (bad input, late stamp...); paired: it was skipped after pairing.

        `rejected` counts every skipped frame, `skipped_pairs` the pairs among them, so that
        pairs = published + dropped + skipped_pairs + inference_failures (+ the pair in flight).
        """
        with self._lock:
            self.rejected += 1
            self.skipped_pairs += paired
            self.last_skip = reason

    def failed(self, reason: str) -> None:
        """Record a pair lost to a failure of inference or publishing (not the input's fault)."""
        with self._lock:
            self.inference_failures += 1
            self.last_failure = reason

    def worker_died(self, reason: str) -> None:
        """Record that the inference thread died and was restarted."""
        with self._lock:
            self.worker_restarts += 1
            self._worker_death = reason

    def count(self, counter: str) -> None:
        """Add one to a plain counter (dropped, clock_jumps, downscaled, qos_incompatible, bad_payloads)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def busy(self, started: Optional[float]) -> None:
        """Note that the worker started a frame at `started` (monotonic), or is idle again (None)."""
        self.busy_since = started

    def published(self, stamp_ns: int, now_ns: int, overhead_ms: float) -> None:
        """Record a publish, its latency from the visible stamp and the time spent outside inference."""
        now = time.monotonic()
        with self._lock:
            self.published_count += 1
            self.last_publish = now
            self.rates[2].add(now)
            self.latencies_ms.append((now_ns - stamp_ns) / 1e6)
            self.overhead_ms.append(overhead_ms)

    def snapshot(self, last_skew_ns: Optional[int]) -> HealthSnapshot:
        """Return the health model's inputs now; failures and a worker death are reported once."""
        with self._lock:
            snap = HealthSnapshot(
                now=time.monotonic(), active_since=self.active_since, last_frame=tuple(self.last_frame),
                last_pair=self.last_pair, last_publish=self.last_publish, busy_since=self.busy_since,
                new_failures=self.inference_failures - self._failures_reported, last_failure=self.last_failure,
                worker_death=self._worker_death, worker_restarts=self.worker_restarts, last_skip=self.last_skip,
                last_skew_ns=last_skew_ns)
            self._failures_reported = self.inference_failures
            self._worker_death = None
        return snap

    def report(self, pairing: PairingStats) -> dict[str, str]:
        """Key-value pairs for the diagnostic status."""
        now = time.monotonic()
        with self._lock:
            lat = np.array(self.latencies_ms) if self.latencies_ms else None
            ages = [f'{now - t:.1f}' if t is not None else 'never' for t in self.last_frame]
            values = {
                'ir rate (Hz)': f'{self.rates[0].rate(now):.1f}',
                'visible rate (Hz)': f'{self.rates[1].rate(now):.1f}',
                'output rate (Hz)': f'{self.rates[2].rate(now):.1f}',
                'ir age (s)': ages[0], 'visible age (s)': ages[1],
                'latency p50 (ms)': f'{np.percentile(lat, 50):.1f}' if lat is not None else 'n/a',
                'latency p95 (ms)': f'{np.percentile(lat, 95):.1f}' if lat is not None else 'n/a',
                'node overhead p50 (ms)': f'{np.percentile(self.overhead_ms, 50):.1f}' if self.overhead_ms else 'n/a',
                'frames received ir/visible': f'{self.frames_received[0]}/{self.frames_received[1]}',
                'pairs': str(self.pairs), 'published': str(self.published_count),
                'dropped (mailbox)': str(self.dropped), 'rejected frames': str(self.rejected),
                'skipped pairs': str(self.skipped_pairs),
                'inference failures': str(self.inference_failures),
                'worker restarts': str(self.worker_restarts),
                'clock jumps': str(self.clock_jumps), 'downscaled frames': str(self.downscaled),
                'bad compressed payloads': str(self.bad_payloads),
                'incompatible QoS events': str(self.qos_incompatible),
                'evicted ir/visible': f'{pairing.evictions[0]}/{pairing.evictions[1]}',
                'last skip reason': self.last_skip or 'none',
            }
        edges = [f'<={e:g}ms' for e in SKEW_BIN_EDGES_MS] + [f'>{SKEW_BIN_EDGES_MS[-1]:g}ms']
        values['skew histogram'] = ' '.join(f'{e}:{n}' for e, n in zip(edges, pairing.skew_histogram) if n)
        return values
