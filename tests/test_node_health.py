"""The node's ROS-free health pieces: the health model, rate meters, per-reason throttling, the supervised worker."""

import threading
import time

import pytest

from fusion_ros.ros.echo import clip, short_repr
from fusion_ros.ros.health import assess, ERROR, HealthLimits, HealthSnapshot, OK, WARN
from fusion_ros.ros.log_throttle import reason_key, ReasonThrottle
from fusion_ros.ros.mailbox import Mailbox
from fusion_ros.ros.stats import RateMeter
from fusion_ros.ros.worker import SupervisedWorker

LIMITS = HealthLimits(no_pair_warn_after=2.0, stream_warn_after=3.0, no_output_error_after=5.0)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def healthy(now=100.0, **changes) -> HealthSnapshot:
    """A node that fused a moment ago, with changes applied."""
    values = dict(now=now, active_since=0.0, last_frame=(now - 0.1, now - 0.1), last_pair=now - 0.1,
                  last_publish=now - 0.2)
    values.update(changes)
    return HealthSnapshot(**values)


def test_a_node_that_fuses_is_ok_and_an_inactive_one_says_so():
    assert assess(healthy(), LIMITS) == (OK, 'fusing')
    assert assess(healthy(active_since=None), LIMITS)[0] == OK
    assert 'inactive' in assess(healthy(active_since=None), LIMITS)[1]
    assert assess(healthy(now=1.0, active_since=0.5, last_frame=(None, None), last_pair=None, last_publish=None),
                  LIMITS) == (OK, 'active, waiting for the first pair')


def test_pairs_without_output_are_an_error_with_the_skip_reason():
    level, message = assess(healthy(last_publish=90.0, last_skip='ir gain maps nothing'), LIMITS)
    assert level == ERROR
    assert 'no fused frame published for 10.0 s while pairs arrive' in message and 'ir gain maps nothing' in message
    level, message = assess(healthy(last_publish=None, active_since=80.0, busy_since=81.0), LIMITS)
    assert level == ERROR and 'started 19.0 s ago' in message          # a hung inference is named too
    assert assess(healthy(last_publish=96.0), LIMITS)[0] == OK           # slow, not stalled


def test_no_output_without_pairs_is_not_an_output_error():
    snap = healthy(last_pair=80.0, last_publish=80.0)
    level, message = assess(snap, LIMITS)
    assert level == WARN and 'no fused frame' not in message and 'no IR/visible pair for 20.0 s' in message


def test_each_stopped_stream_is_named_with_its_age():
    level, message = assess(healthy(last_frame=(90.0, 99.9), last_pair=99.0), LIMITS)
    assert level == WARN and message == 'ir stream stopped 10.0 s ago'
    level, message = assess(healthy(last_frame=(None, 99.9), last_pair=None, last_publish=None, active_since=95.0),
                            LIMITS)
    assert 'no ir frame since activation 5.0 s ago' in message
    assert 'no IR/visible pair for 5.0 s (waiting for both input streams' in message


def test_failures_and_a_dead_worker_are_errors_listed_first():
    snap = healthy(last_frame=(90.0, 99.9), new_failures=2, last_failure='cv2.error: bad channels',
                   worker_death='WorkerKilled: x', worker_restarts=3)
    level, message = assess(snap, LIMITS)
    assert level == ERROR
    parts = message.split('; ')
    assert parts[0] == 'inference worker died (WorkerKilled: x) and was restarted (3 restart(s) since start)'
    assert parts[1].startswith('2 frame(s) failed') and 'cv2.error' in parts[1]
    assert parts[-1] == 'ir stream stopped 10.0 s ago'


def test_rates_fall_to_zero_when_events_stop():
    clock = FakeClock()
    meter = RateMeter(window_s=5.0, clock=clock)
    for _ in range(50):                       # 10 Hz for 5 s
        clock.t += 0.1
        meter.add()
    assert meter.rate() == pytest.approx(10.0)
    clock.t += 2.5
    assert meter.rate() == pytest.approx(5.0, abs=0.3)   # decays while silent...
    clock.t += 2.6
    assert meter.rate() == 0.0                           # ...to zero after one window
    meter.reset()
    clock.t += 1.0
    meter.add()
    assert meter.rate() == pytest.approx(1.0)            # a fresh meter measures over its own age


def test_rate_above_what_the_meter_keeps_is_still_right():
    clock = FakeClock()
    meter = RateMeter(window_s=5.0, max_events=100, clock=clock)
    for _ in range(1000):                     # 1 kHz: only the last 100 events are kept
        clock.t += 0.001
        meter.add()
    assert meter.rate() == pytest.approx(1000.0, rel=0.02)


def test_throttle_is_per_reason_and_counts_what_it_held_back():
    clock = FakeClock()
    throttle = ReasonThrottle(period_s=2.0, max_keys=3, clock=clock)
    late = reason_key('ir frame late: stamp 3.0 ms older')
    assert late == reason_key('ir frame late: stamp 97.5 ms older')
    encoding = reason_key("unsupported image encoding 'yuv422'; supported: mono8")
    assert encoding == reason_key("unsupported image encoding 'nv12'; supported: mono8") != late
    assert throttle.admit(late) == 0 and throttle.admit(encoding) == 0   # a second reason is not hidden
    assert throttle.admit(late) is None and throttle.admit(late) is None
    clock.t += 2.0
    assert throttle.admit(late) == 2
    for key in ('a', 'b', 'c', 'd'):                                    # bounded memory
        throttle.admit(key)
    assert len(throttle._keys) == 3


def test_echo_cuts_long_values():
    assert short_repr('bgr8') == "'bgr8'"
    assert short_repr('x' * 1000).endswith('(1000 characters)') and len(short_repr('x' * 1000)) < 80
    assert short_repr(list(range(500))).endswith('(500 items)')
    assert clip('y' * 1000, 10) == 'yyyyyyyyyy... (1000 characters)'


class Dies(BaseException):
    """Ends a thread the way no per-item handler would catch."""


def test_a_dead_worker_is_restarted_once_per_call_and_stop_is_final():
    runs, deaths = [], []
    stop = threading.Event()

    def target():
        runs.append(1)
        if len(runs) == 1:
            raise Dies('first run')
        stop.wait()
    worker = SupervisedWorker(target, 'test_worker', on_death=deaths.append)
    worker.start()
    deadline = time.monotonic() + 5
    while worker.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.alive and isinstance(deaths[0], Dies)
    assert worker.restart_if_dead() == 'Dies: first run'
    assert worker.restarts == 1 and worker.restart_if_dead() is None      # alive now: nothing to do
    worker.stop(stop.set)
    assert not worker.alive and worker.restart_if_dead() is None          # stopped on purpose: not restarted
    assert len(runs) == 2


def test_start_waits_for_a_thread_that_outlived_stop():
    """Deactivate's join times out on a slow frame; the next activate must not run two threads on one mailbox."""
    box, lock, release = Mailbox(), threading.Lock(), threading.Event()
    running, peak, runs = [0], [0], []

    def target():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        runs.append(1)
        if len(runs) == 1:
            release.wait(5)               # a frame slower than stop's timeout
        while not box.closed:
            box.get(timeout=0.02)
        with lock:
            running[0] -= 1
    worker = SupervisedWorker(target, 'test_worker')
    worker.start(prepare=box.reopen)
    worker.stop(box.close, timeout_s=0.05)
    assert worker.alive                   # still in its slow frame
    threading.Timer(0.3, release.set).start()
    worker.start(prepare=box.reopen)
    deadline = time.monotonic() + 5
    while len(runs) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(runs) == 2 and peak[0] == 1
    worker.stop(box.close)
    assert not worker.alive
