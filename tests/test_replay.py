"""A bag written with rosbags from the bundled samples, replayed through fusion_node over real DDS."""

import json
import os
import random

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))

import numpy as np  # noqa: E402

from fusion_ros.cli.main import main  # noqa: E402
from fusion_ros.core.imageio import pair_folders, read_ir, read_visible  # noqa: E402
from fusion_ros.core.pipeline import FusionPipeline  # noqa: E402
from fusion_ros.ros.replay import replay_bag  # noqa: E402
from tests.model_fixtures import PAIRS  # noqa: E402


def test_replayed_bag_equals_the_offline_pipeline(exported, tmp_path):
    bag = tmp_path / 'samples_bag'
    assert main(['bag', 'make', '--pairs', str(PAIRS), '--out', str(bag), '--fps', '5']) == 0
    result = replay_bag(bag, exported[0], threads=1)
    pipeline = FusionPipeline.from_model(exported[0], threads=1)
    expected = [pipeline.fuse(read_ir(ir), read_visible(vis)).fused_bgr for ir, vis in pair_folders(
        PAIRS / 'ir', PAIRS / 'vi').pairs]
    assert result.pairs_sent == len(expected) == len(result.fused) == 7
    for got, want in zip((result.fused[s] for s in sorted(result.fused)), expected):
        np.testing.assert_array_equal(got, want)     # gray TNO frames included: bgr8 with equal planes
    assert result.dropped == 0 and result.rejected == 0


def test_bag_replay_command_writes_a_quality_and_latency_report(exported, tmp_path):
    bag = tmp_path / 'b'
    assert main(['bag', 'make', '--pairs', str(PAIRS), '--out', str(bag), '--storage', 'mcap']) == 0
    assert main(['bag', 'replay', '--bag', str(bag), '--out', str(tmp_path / 'r'), '--model', str(exported[0])]) == 0
    report = json.loads((tmp_path / 'r' / 'report.json').read_text())
    assert report['fused'] == report['pairs_sent'] == 7
    assert report['scored'] == 7 and 0 < report['quality_mean']['Qabf'] < 1
    assert report['latency_ms']['p95'] >= report['latency_ms']['p50'] > 0


def test_bag_errors_exit_2(tmp_path, capsys):
    assert main(['bag', 'replay', '--bag', str(tmp_path / 'none'), '--out', str(tmp_path / 'r')]) == 2
    assert 'error' in capsys.readouterr().err
