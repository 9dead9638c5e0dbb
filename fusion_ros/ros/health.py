"""
The node's health as one pure function of what happened when (ROS-free, unit-tested).

Health is judged by output, not only by pairing: a node whose pairs all fail, or whose inference
thread died, must not report OK. Levels follow diagnostic_msgs/DiagnosticStatus:

* error: the inference worker died (it is restarted; the status says why and how often);
  frames failed in inference or publishing since the previous report; pairs keep forming but
  no fused frame was published for `no_output_error_after` seconds (every pair skipped, e.g. an
  IR gain that maps nothing, or an inference that hangs);
* warning: an input stream stopped (per stream, with its age, or never arrived since
  activation); no IR/visible pair formed for `no_pair_warn_after` seconds (with the last skew);
* ok: none of the above.
"""

from dataclasses import dataclass
from typing import Optional

from fusion_ros.ros.pairing import STREAM_NAMES

OK, WARN, ERROR = b'\x00', b'\x01', b'\x02'   # diagnostic_msgs/DiagnosticStatus levels


@dataclass(frozen=True)
class HealthLimits:
    """Seconds after which silence becomes a problem (node parameters)."""

    no_pair_warn_after: float = 2.0
    stream_warn_after: float = 2.0
    no_output_error_after: float = 10.0


@dataclass(frozen=True)
class HealthSnapshot:
    """What the node saw, as monotonic times (s); None where it never happened."""

    now: float
    active_since: Optional[float]                       # None while not active
    last_frame: tuple[Optional[float], Optional[float]]  # per stream (IR, visible), since activation
    last_pair: Optional[float] = None
    last_publish: Optional[float] = None
    busy_since: Optional[float] = None                  # the frame in the worker started then; None when idle
    new_failures: int = 0                               # since the previous report
    last_failure: Optional[str] = None
    worker_death: Optional[str] = None                  # why the worker died since the previous report
    worker_restarts: int = 0
    last_skip: Optional[str] = None                     # the latest reason a frame or pair was skipped
    last_skew_ns: Optional[int] = None


def assess(snap: HealthSnapshot, limits: HealthLimits) -> tuple[bytes, str]:
    """Return the level and a message listing every problem found (worst first), or 'fusing'."""
    if snap.active_since is None:
        return OK, 'inactive: configured, not subscribed'
    problems: list[tuple[bytes, str]] = []
    now = snap.now
    if snap.worker_death:
        problems.append((ERROR, f'inference worker died ({snap.worker_death}) and was restarted '
                                f'({snap.worker_restarts} restart(s) since start)'))
    if snap.new_failures:
        problems.append((ERROR, f'{snap.new_failures} frame(s) failed in inference or publishing since the last '
                                f'report (last: {snap.last_failure})'))
    silent = now - (snap.last_publish if snap.last_publish is not None else snap.active_since)
    pairs_arrive = snap.last_pair is not None and now - snap.last_pair <= limits.no_output_error_after
    if pairs_arrive and silent > limits.no_output_error_after:
        why = []
        if snap.busy_since is not None:
            why.append(f'the frame in progress started {now - snap.busy_since:.1f} s ago')
        if snap.last_skip:
            why.append(f'last skip: {snap.last_skip}')
        detail = f' ({"; ".join(why)})' if why else ''
        problems.append((ERROR, f'no fused frame published for {silent:.1f} s while pairs arrive{detail}'))
    fresh = []
    for name, last in zip(STREAM_NAMES, snap.last_frame):
        age = now - (last if last is not None else snap.active_since)
        fresh.append(age <= limits.stream_warn_after)
        if not fresh[-1]:
            problems.append((WARN, f'{name} stream stopped {age:.1f} s ago' if last is not None
                             else f'no {name} frame since activation {age:.1f} s ago'))
    since_pair = now - (snap.last_pair if snap.last_pair is not None else snap.active_since)
    if since_pair > limits.no_pair_warn_after:
        skew = f'{snap.last_skew_ns / 1e6:.1f} ms' if snap.last_skew_ns is not None else 'unknown'
        what = 'both streams arrive' if all(fresh) else 'waiting for both input streams'
        problems.append((WARN, f'no IR/visible pair for {since_pair:.1f} s ({what}; last observed skew {skew})'))
    if not problems:
        return OK, 'fusing' if snap.last_publish is not None else 'active, waiting for the first pair'
    problems.sort(key=lambda p: p[0], reverse=True)
    return problems[0][0], '; '.join(message for _, message in problems)
