"""
Running fusion_node inside another program (bag replay, tests): a clean stop and a DDS that is ready.

Two faults came from doing this naively. A peer's first frame or the node's first output was lost
when it was sent as soon as the publisher counted a reader: Fast DDS discovery is not symmetric,
and a reader that does not know the writer yet drops what it sends. And the node's /rosout lines
vanished in a later run in the same process: destroying a node whose handles a still-spinning
executor thread held only deferred its destruction, and when it finally happened rcl removed the
/rosout publisher registered under the logger name 'fusion_node', which by then was the newer node's.
"""

import threading
import time
from typing import Callable, Iterable


def wait_until(predicate: Callable[[], bool], timeout_s: float, period_s: float = 0.02) -> bool:
    """Poll predicate until it is true or timeout_s has passed; return whether it became true."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(period_s)
    return bool(predicate())


def matched_both_ways(node, publishers: Iterable, subscriptions: Iterable) -> bool:
    """
    Whether DDS has matched a peer's publishers and subscriptions with node's, seen from both ends.

    The node's ends are found by topic name: its subscriptions to the peer's publishers' topics and
    its publishers on the peer's subscriptions' topics. False while one is missing (not configured).
    """
    publishers, subscriptions = list(publishers), list(subscriptions)
    wanted_readers = {pub.topic_name for pub in publishers}
    wanted_writers = {sub.topic_name for sub in subscriptions}
    readers = [sub for sub in node.subscriptions if sub.topic_name in wanted_readers]
    writers = [pub for pub in node.publishers if pub.topic_name in wanted_writers]
    if {r.topic_name for r in readers} != wanted_readers or {w.topic_name for w in writers} != wanted_writers:
        return False
    return (all(pub.get_subscription_count() for pub in (*publishers, *writers))
            and all(sub.get_publisher_count() for sub in (*subscriptions, *readers)))


class SpinThread:
    """An executor spinning in a daemon thread, whose stop() returns once the thread has let go of every handle."""

    def __init__(self, executor):
        self.executor = executor
        self._thread = threading.Thread(target=executor.spin, name='fusion_spin', daemon=True)

    def start(self) -> 'SpinThread':
        """Start spinning; return self so that construction and start read as one step."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Shut the executor down and join its thread; return whether it ended within timeout_s."""
        self.executor.shutdown()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def shut_down(node, peer, spinner: SpinThread, context) -> bool:
    """
    Tear down an in-process fusion_node and its peer in the one safe order; return whether the executor stopped.

    The worker first (nothing publishes after), then the executor thread (it lets go of the nodes'
    handles, see the module's docstring), then the nodes, then their context.
    """
    node.stop_worker()
    stopped = spinner.stop()
    node.destroy_node()
    peer.destroy_node()
    context.shutdown()      # rclpy.shutdown(context=...) does only this for a context of one's own
    return stopped
