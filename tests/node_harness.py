"""
An in-process fusion_node over real rclpy and Fast DDS, shared by the node, fault and fuzz tests.

Localhost-only discovery and a random domain keep test runs from talking to other ROS graphs.
"""

import os
import random

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))

import pytest  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from fusion_ros.core.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.ros import codec  # noqa: E402
from fusion_ros.ros.in_process import matched_both_ways, SpinThread, wait_until  # noqa: E402
from fusion_ros.ros.node import FusionNode  # noqa: E402
from tests.model_fixtures import PAIRS, write_tiny_model  # noqa: E402

IR = read_ir(PAIRS / 'ir' / '00091D.png')
VIS = read_visible(PAIRS / 'vi' / '00091D.png')
ERROR, WARN, OK = b'\x02', b'\x01', b'\x00'


class Harness:
    """A FusionNode plus a peer node with publishers and recorders, spun by one executor."""

    def __init__(self, model, input_qos: QoSProfile = qos_profile_sensor_data, **params):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter('model_path', value=str(model)), Parameter('threads', value=1)]
        overrides += [Parameter(k.replace('__', '.'), value=v) for k, v in params.items()]
        self.node = FusionNode(context=self.context, parameter_overrides=overrides)
        self.peer = rclpy.create_node('fusion_test_peer', context=self.context)
        self.received: dict[str, list] = {}
        self._recorders: list = []
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self._spinner = SpinThread(self.executor).start()
        self.pub_ir, self.pub_vis = (  # image_transport's type and topic for each input's transport
            self.peer.create_publisher(CompressedImage, f'{name}/image/compressed', input_qos)
            if params.get(f'{name}__transport') == 'compressed' else
            self.peer.create_publisher(Image, f'{name}/image', input_qos) for name in ('ir', 'visible'))
        self.pub_info = self.peer.create_publisher(CameraInfo, 'visible/camera_info', input_qos)

    def record(self, msg_type, topic):
        """Keep every message the node publishes on topic (call before start, which waits for the match)."""
        self.received[topic] = []
        self._recorders.append(self.peer.create_subscription(msg_type, topic, self.received[topic].append, 10))
        return self.received[topic]

    def start(self):
        """
        Configure and activate the node, then wait until DDS has matched every test topic in both directions.

        Why both: see fusion_ros.ros.in_process; on a loaded machine the first frame or output was lost.
        """
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_for(lambda: matched_both_ways(self.node, (self.pub_ir, self.pub_vis), self._recorders)), \
            'DDS did not match the test topics'

    def send(self, ir, vis, sec, ir_encoding='mono8', vis_encoding='bgr8', nanosec=0):
        self.pub_ir.publish(image_msg(ir, ir_encoding, sec, 'ir_cam', nanosec))
        self.pub_vis.publish(image_msg(vis, vis_encoding, sec, 'visible_cam', nanosec))

    def close(self):
        self.node.stop_worker()
        assert self._spinner.stop(), 'the executor thread did not end'
        self.node.destroy_node()
        self.peer.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def harness_factory():
    """Make harnesses; every one is torn down after the test."""
    made = []

    def make(model, **params):
        made.append(Harness(model, **params))
        return made[-1]
    yield make
    for harness in made:
        harness.close()


def image_msg(array, encoding, sec, frame_id, nanosec=0):
    """A sensor_msgs/Image of the array, stamped sec.nanosec."""
    msg = codec.array_to_image(array, encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    return msg


def wait_for(predicate, timeout=20.0):
    """Poll predicate until true or timeout; return whether it became true."""
    return wait_until(predicate, timeout)


def identity_model(folder):
    """Fused = visible: a real ONNX graph that costs nothing, so a test measures the node, not inference."""
    from onnx import helper
    return write_tiny_model(folder, 'identity', helper.make_node('Identity', ['visible_bgr'], ['fused_bgr']))


def statuses(diagnostics):
    """Every DiagnosticStatus received so far."""
    return [s for d in list(diagnostics) for s in d.status]
