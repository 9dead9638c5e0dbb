"""Rates, latency percentiles and counters the node reports on /diagnostics (ROS-free)."""

from collections import deque
import threading
import time
from typing import Optional

import numpy as np

from fusion_ros.pairing import SKEW_BIN_EDGES_MS, PairingStats

OK, WARN, ERROR = b'\x00', b'\x01', b'\x02'   # diagnostic_msgs/DiagnosticStatus levels


class NodeStats:
    """Thread-safe counters with a sliding window for rates and latency."""

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self.frames_in = [deque(maxlen=window), deque(maxlen=window)]
        self.out_times: deque = deque(maxlen=window)
        self.latencies_ms: deque = deque(maxlen=window)
        self.overhead_ms: deque = deque(maxlen=window)
        self.started = time.monotonic()
        self.last_pair: Optional[float] = None
        self.pairs = self.dropped = self.rejected = self.inference_failures = self.published_count = 0
        self.qos_incompatible = self.clock_jumps = 0
        self.frames_received = [0, 0]
        self._failures_seen = 0

    def frame_in(self, stream: int) -> None:
        """Record an input frame arrival."""
        with self._lock:
            self.frames_in[stream].append(time.monotonic())
            self.frames_received[stream] += 1

    def pair_formed(self) -> None:
        """Record that the pairer fired."""
        with self._lock:
            self.pairs += 1
            self.last_pair = time.monotonic()

    def published(self, stamp_ns: int, now_ns: int, overhead_ms: float) -> None:
        """Record a publish, its latency from the visible stamp and the time spent outside inference."""
        with self._lock:
            self.published_count += 1
            self.out_times.append(time.monotonic())
            self.latencies_ms.append((now_ns - stamp_ns) / 1e6)
            self.overhead_ms.append(overhead_ms)

    @staticmethod
    def _rate(times: deque) -> float:
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def health(self, warn_after_s: float, last_skew_ns: Optional[int]) -> tuple[bytes, str]:
        """Level and message: ERROR on new inference failures, WARN when pairing has stalled."""
        with self._lock:
            new_failures = self.inference_failures - self._failures_seen
            self._failures_seen = self.inference_failures
            since = time.monotonic() - (self.last_pair or self.started)
            inputs = all(self.frames_in)
        if new_failures:
            return ERROR, f'{new_failures} inference failure(s) since the last report'
        if since > warn_after_s:
            skew = f'{last_skew_ns / 1e6:.1f} ms' if last_skew_ns is not None else 'unknown'
            what = 'both streams arrive' if inputs else 'waiting for both input streams'
            return WARN, f'no IR/visible pair for {since:.1f} s ({what}; last observed skew {skew})'
        return OK, 'fusing'

    def report(self, pairing: PairingStats) -> dict[str, str]:
        """Key-value pairs for the diagnostic status."""
        with self._lock:
            lat = np.array(self.latencies_ms) if self.latencies_ms else None
            values = {
                'ir rate (Hz)': f'{self._rate(self.frames_in[0]):.1f}',
                'visible rate (Hz)': f'{self._rate(self.frames_in[1]):.1f}',
                'output rate (Hz)': f'{self._rate(self.out_times):.1f}',
                'latency p50 (ms)': f'{np.percentile(lat, 50):.1f}' if lat is not None else 'n/a',
                'latency p95 (ms)': f'{np.percentile(lat, 95):.1f}' if lat is not None else 'n/a',
                'node overhead p50 (ms)': f'{np.percentile(self.overhead_ms, 50):.1f}' if self.overhead_ms else 'n/a',
                'frames received ir/visible': f'{self.frames_received[0]}/{self.frames_received[1]}',
                'pairs': str(self.pairs), 'published': str(self.published_count),
                'dropped (mailbox)': str(self.dropped), 'rejected frames': str(self.rejected),
                'inference failures': str(self.inference_failures),
                'incompatible QoS events': str(self.qos_incompatible),
                'evicted ir/visible': f'{pairing.evictions[0]}/{pairing.evictions[1]}',
            }
        edges = [f'<={e:g}ms' for e in SKEW_BIN_EDGES_MS] + [f'>{SKEW_BIN_EDGES_MS[-1]:g}ms']
        values['skew histogram'] = ' '.join(f'{e}:{n}' for e, n in zip(edges, pairing.skew_histogram) if n)
        return values
