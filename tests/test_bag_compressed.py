"""Compressed bags (image_transport's CompressedImage topics): written, read, and replayed through fusion_node."""

import json
import os
from pathlib import Path
import random

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from fusion_ros.cli.main import main  # noqa: E402
from fusion_ros.core.imageio import pair_folders, read_ir, read_visible  # noqa: E402
from fusion_ros.ros import codec  # noqa: E402
from fusion_ros.ros.bag import bag_summary, read_bag_images, write_pairs_bag  # noqa: E402
from fusion_ros.ros.replay import replay_bag  # noqa: E402
from tests.model_fixtures import PAIRS  # noqa: E402

REALTIME = Path(__file__).resolve().parent.parent / 'models' / 'realtime.onnx'


def test_compressed_bag_holds_png_ir_and_jpeg_visible_on_transport_topics(tmp_path):
    pairs = tmp_path / 'pairs'
    (pairs / 'ir').mkdir(parents=True)
    (pairs / 'vi').mkdir()
    rng = np.random.default_rng(0)
    irs = [rng.integers(20000, 40000, (6, 8), dtype=np.uint16) for _ in range(2)]   # radiometric counts
    for k, ir in enumerate(irs):
        assert cv2.imwrite(str(pairs / 'ir' / f'{k}.png'), ir)
        assert cv2.imwrite(str(pairs / 'vi' / f'{k}.png'), np.full((6, 8, 3), 90 + 40 * k, np.uint8))
    assert write_pairs_bag(pairs, tmp_path / 'bag', compressed=True, jpeg_quality=95) == 2
    topics = bag_summary(tmp_path / 'bag')['topics']
    assert topics == {'/ir/image/compressed': {'msgtype': 'sensor_msgs/msg/CompressedImage', 'count': 2},
                      '/visible/image/compressed': {'msgtype': 'sensor_msgs/msg/CompressedImage', 'count': 2}}
    messages = list(read_bag_images(tmp_path / 'bag'))
    ir_msgs = [m for t, _, m in messages if t == '/ir/image/compressed']
    vis_msgs = [m for t, _, m in messages if t == '/visible/image/compressed']
    for k, (ir, ir_msg, vis_msg) in enumerate(zip(irs, ir_msgs, vis_msgs, strict=True)):
        assert ir_msg.format == 'mono16; png compressed mono16'
        decoded, encoding = codec.message_to_array(ir_msg)
        assert encoding == 'mono16'
        np.testing.assert_array_equal(decoded, ir)            # PNG: lossless, 16 bits kept
        assert vis_msg.format == 'bgr8; jpeg compressed bgr8'
        assert np.abs(codec.message_to_array(vis_msg)[0].astype(int) - (90 + 40 * k)).max() <= 2


def jpeg_error(vis: np.ndarray, quality: int) -> float:
    """Return JPEG's own error on a visible frame: mean |decoded - source| at the bag's quality."""
    _, payload = cv2.imencode('.jpg', vis, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return float(np.abs(cv2.imdecode(payload, cv2.IMREAD_UNCHANGED).astype(int) - vis.astype(int)).mean())


def test_compressed_bag_replays_to_the_raw_bags_fused_images_within_jpeg_error(tmp_path):
    raw_bag, compressed_bag = tmp_path / 'raw', tmp_path / 'compressed'
    assert main(['bag', 'make', '--pairs', str(PAIRS), '--out', str(raw_bag)]) == 0
    assert main(['bag', 'make', '--pairs', str(PAIRS), '--out', str(compressed_bag), '--compressed',
                 '--jpeg-quality', '90']) == 0
    raw = replay_bag(raw_bag, REALTIME, threads=1)
    packed = replay_bag(compressed_bag, REALTIME, threads=1)
    assert sorted(packed.fused) == sorted(raw.fused) and len(raw.fused) == 7
    assert packed.dropped == packed.rejected == 0
    sources = [read_visible(vis) for _, vis in pair_folders(PAIRS / 'ir', PAIRS / 'vi').pairs]
    for stamp, vis in zip(sorted(raw.fused), sources):
        difference = np.abs(packed.fused[stamp].astype(int) - raw.fused[stamp].astype(int)).mean()
        assert difference <= jpeg_error(vis, 90) + 0.5, f'pair at {stamp}: {difference:.2f} grey levels'
    assert main(['bag', 'replay', '--bag', str(compressed_bag), '--out', str(tmp_path / 'report'),
                 '--model', str(REALTIME)]) == 0
    report = json.loads((tmp_path / 'report' / 'report.json').read_text())
    assert report['fused'] == 7 and report['scored'] >= 3     # sources decoded from the compressed messages


def test_ir_png_in_the_bag_keeps_the_files_values(tmp_path):
    assert write_pairs_bag(PAIRS, tmp_path / 'bag', compressed=True) == 7
    ir_files = [ir for ir, _ in pair_folders(PAIRS / 'ir', PAIRS / 'vi').pairs]
    ir_msgs = [m for t, _, m in read_bag_images(tmp_path / 'bag', ['/ir/image/compressed'])]
    for path, msg in zip(ir_files, ir_msgs, strict=True):
        np.testing.assert_array_equal(codec.to_mono(*codec.message_to_array(msg)), read_ir(path))
