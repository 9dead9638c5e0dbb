"""fusion_node in-process over real rclpy and Fast DDS (localhost only, random domain)."""

import os
import random
import threading
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from fusion_ros import codec  # noqa: E402
from fusion_ros.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.node import FusionNode  # noqa: E402
from fusion_ros.pipeline import FusionPipeline  # noqa: E402
from tests.model_fixtures import PAIRS  # noqa: E402


@pytest.fixture
def ros(exported):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = FusionNode(context=context, parameter_overrides=[Parameter('model_path', value=str(exported[0])),
                                                            Parameter('threads', value=1)])
    peer = rclpy.create_node('fusion_test_peer', context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    executor.add_node(peer)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield node, peer
    node.mailbox.close()
    executor.shutdown()
    node.destroy_node()
    peer.destroy_node()
    rclpy.shutdown(context=context)


def image_msg(array, encoding, sec, frame_id):
    msg = codec.array_to_image(array, encoding)
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    return msg


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_fused_output_equals_the_offline_pipeline(ros, exported):
    node, peer = ros
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    received = []
    peer.create_subscription(Image, 'fused/image', received.append, 10)
    pub_ir = peer.create_publisher(Image, 'ir/image', qos_profile_sensor_data)
    pub_vis = peer.create_publisher(Image, 'visible/image', qos_profile_sensor_data)
    ir, vis = read_ir(PAIRS / 'ir' / '00091D.png'), read_visible(PAIRS / 'vi' / '00091D.png')
    assert wait_for(lambda: pub_ir.get_subscription_count() and pub_vis.get_subscription_count())
    # a truncated frame first: skipped with a reason, the node keeps running
    bad = image_msg(vis, 'bgr8', 1, 'cam')
    bad.data = bad.data[:100]
    pub_vis.publish(bad)
    pub_ir.publish(image_msg(ir, 'mono8', 1, 'ir_cam'))
    assert wait_for(lambda: node.stats.rejected >= 1)
    pub_ir.publish(image_msg(ir, 'mono8', 2, 'ir_cam'))
    pub_vis.publish(image_msg(vis, 'bgr8', 2, 'visible_cam'))
    assert wait_for(lambda: received)
    out = received[0]
    assert (out.header.stamp.sec, out.header.frame_id) == (2, 'visible_cam')
    assert (out.encoding, out.height, out.width) == ('bgr8', 480, 640)
    expected = FusionPipeline.from_model(exported[0], threads=1).fuse(ir, vis).fused_bgr
    np.testing.assert_array_equal(codec.image_to_array(out), expected)


def test_bad_parameters_are_rejected_with_a_reason(ros):
    node, _ = ros
    result = node.set_parameters([Parameter('pairing.mode', value='exact')])[0]
    assert not result.successful and 'pairing.mode must be one of' in result.reason
    result = node.set_parameters([Parameter('registration.homography', value=[0.0] * 9)])[0]
    assert not result.successful and 'singular' in result.reason.lower()
    assert node.set_parameters([Parameter('pairing.slop', value=0.05)])[0].successful
