"""
The inference thread, supervised (ROS-free).

Frame-level errors are handled inside the loop; whatever still ends the thread (a BaseException,
a bug in the loop itself) must not leave a node that subscribes, pairs and publishes nothing while
its diagnostics look healthy. The owner calls `restart_if_dead` periodically (the node: on every
diagnostics tick, so a thread that dies at once is restarted at most once per period, not in a
tight loop), reports the death as an ERROR and counts the restart.
"""

import threading
from typing import Callable, Optional

from fusion_ros.ros.echo import clip


class SupervisedWorker:
    """One daemon thread running target until stop(); a dead one is restarted by restart_if_dead()."""

    def __init__(self, target: Callable[[], None], name: str,
                 on_death: Optional[Callable[[BaseException], None]] = None):
        self._target = target
        self._name = name
        self._on_death = on_death
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stopping = True
        self._death: Optional[str] = None
        self.restarts = 0

    def start(self, prepare: Callable[[], None] = lambda: None) -> None:
        """
        Start the thread (again, after stop); prepare runs just before (the node reopens its mailbox).

        A previous thread that stop() did not see end (its frame took longer than the timeout) is
        waited for first, so that two threads never serve one mailbox.
        """
        previous = self._thread
        if previous is not None and previous is not threading.current_thread():
            previous.join()
        with self._lock:
            self._stopping = False
            self._death = None
            prepare()
            self._spawn()

    def _spawn(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as err:  # whatever ends the thread is recorded, then it ends
            self._death = f'{type(err).__name__}: {clip(str(err))}'
            if self._on_death is not None:
                self._on_death(err)
            return
        if not self._stopping:
            self._death = 'the loop returned while not stopping'

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def restart_if_dead(self) -> Optional[str]:
        """Restart a thread that ended without stop(); return why it ended, or None if nothing was done."""
        with self._lock:
            if self._stopping or self.alive:
                return None
            reason = self._death or 'ended'
            self._death = None
            self.restarts += 1
            self._spawn()
            return reason

    def stop(self, wake: Callable[[], None], timeout_s: float = 10.0) -> None:
        """Mark stopping, wake the loop (wake makes target return) and wait for it, unless called from it."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)
