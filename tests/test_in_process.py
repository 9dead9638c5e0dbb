"""fusion_ros.ros.in_process over real rclpy and Fast DDS: the match seen from both ends, a spin thread that lets go."""

from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from fusion_ros.ros.in_process import matched_both_ways, SpinThread, wait_until
from tests import node_harness  # noqa: F401  (localhost-only discovery and a random domain, as for the node tests)


def test_the_match_waits_for_the_node_end_and_a_spin_thread_lets_go_of_the_handles():
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('in_process_node', context=context)
        peer = rclpy.create_node('in_process_peer', context=context)
        node.create_subscription(String, 'request', lambda _: None, 10)
        to_node = peer.create_publisher(String, 'request', 10)
        from_node = peer.create_subscription(String, 'reply', lambda _: None, 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(peer)
        spinner = SpinThread(executor).start()
        assert wait_until(lambda: to_node.get_subscription_count() > 0, 20)
        assert not matched_both_ways(node, [to_node], [from_node])       # the node publishes no reply yet
        node.create_publisher(String, 'reply', 10)
        assert wait_until(lambda: matched_both_ways(node, [to_node], [from_node]), 20)
        assert not matched_both_ways(node, [peer.create_publisher(String, 'unheard', 10)], [])
        assert spinner.stop(timeout_s=10)
        handle = node.handle
        node.destroy_node()
        assert handle.pointer == 0       # freed now, not whenever a spinning wait set lets go
        peer.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_wait_until_reports_a_predicate_that_never_holds():
    calls = []
    assert not wait_until(lambda: calls.append(1), 0.1, period_s=0.02)
    assert len(calls) >= 3
