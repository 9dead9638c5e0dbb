"""The installed `fusion_node` console script in its own process, fed 640x480 best-effort frames over DDS."""

import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))
REPO = Path(__file__).resolve().parent.parent
# Both processes need the large shared-memory segment, as on a robot (README, "ROS 2 node").
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds_large_data.xml')

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
import yaml  # noqa: E402

from fusion_ros import codec  # noqa: E402
from fusion_ros.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.pipeline import FusionPipeline  # noqa: E402
from tests.model_fixtures import PAIRS  # noqa: E402

SCRIPT = Path(sys.executable).with_name('fusion_node')


def test_console_script_with_params_file(exported, tmp_path):
    params = yaml.safe_load((REPO / 'config' / 'fusion.yaml').read_text())
    params['/**']['ros__parameters'].update({'model_path': str(exported[0]), 'threads': 1, 'output_encoding': 'rgb8'})
    params_file = tmp_path / 'params.yaml'
    params_file.write_text(yaml.safe_dump(params))
    log = (tmp_path / 'node.log').open('w')
    proc = subprocess.Popen([str(SCRIPT), '--ros-args', '--params-file', str(params_file), '-r', '__ns:=/rig'],
                            stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context)
    peer = rclpy.create_node('feeder', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(peer)
    try:
        received = []
        peer.create_subscription(Image, '/rig/fused/image', received.append, 10)
        pub_ir = peer.create_publisher(Image, '/rig/ir/image', qos_profile_sensor_data)
        pub_vis = peer.create_publisher(Image, '/rig/visible/image', qos_profile_sensor_data)
        ir, vis = read_ir(PAIRS / 'ir' / '00718N.png'), read_visible(PAIRS / 'vi' / '00718N.png')
        deadline = time.monotonic() + 60
        sec = 0
        while not received and time.monotonic() < deadline and proc.poll() is None:
            sec += 1    # keep sending 640x480 pairs until the node (started, configured, active) answers
            for pub, array, enc in ((pub_ir, ir, 'mono8'), (pub_vis, vis, 'bgr8')):
                msg = codec.array_to_image(array, enc)
                msg.header.stamp.sec, msg.header.frame_id = sec, 'visible_cam'
                pub.publish(msg)
            executor.spin_once(timeout_sec=0.2)
        for _ in range(10):
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        peer.destroy_node()
        rclpy.shutdown(context=context)
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    output = (tmp_path / 'node.log').read_text()
    assert received, f'no fused frame from the node process; its log:\n{output[-3000:]}'
    out = received[0]
    assert (out.encoding, out.width, out.height, out.header.frame_id) == ('rgb8', 640, 480, 'visible_cam')
    expected = FusionPipeline.from_model(exported[0], threads=1).fuse(ir, vis).fused_bgr[..., ::-1]
    np.testing.assert_array_equal(codec.image_to_array(out), expected)
    assert 'configured: onnxruntime' in output


def test_sigterm_shuts_the_node_down_cleanly(tmp_path):
    """F10: docker stop / systemd send SIGTERM; the node ended with a traceback and exit status 1."""
    from tests.node_harness import identity_model
    log_path = tmp_path / 'node.log'
    with log_path.open('w') as log:
        proc = subprocess.Popen([str(SCRIPT), '--ros-args', '-p', f'model_path:={identity_model(tmp_path)}',
                                 '-r', '__ns:=/sigterm'], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while 'configured:' not in log_path.read_text() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            assert 'configured:' in log_path.read_text(), log_path.read_text()[-3000:]
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    assert 'Traceback' not in output and 'shutting down' in output
