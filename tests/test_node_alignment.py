"""
fusion_node watches its registration: the alignment score on /diagnostics, and a WARN when the rig is disturbed.

The rig is simulated from a bundled RoadScene pair (DATA.md): an IR camera of lower resolution
seen through a known homography, which the node is given with the score the calibration would
have written. Knocking the IR camera (12 px, 2 degrees) must turn /diagnostics to WARN; the
undisturbed rig must stay quiet.
"""

from pathlib import Path

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np

from fusion_ros.core.calibration.geometry import centred_similarity
from fusion_ros.core.calibration.score import alignment_score, footprint_of
from fusion_ros.core.registration import make_registration, register_ir
from fusion_ros.evaluation.rig_simulation import random_rig, render_ir
from fusion_ros.ros.alignment_monitor import AlignmentMonitor
from tests import node_harness
from tests.node_harness import identity_model, statuses, wait_for, WARN

PAIRS = Path(__file__).parent / 'data' / 'pairs'
MOVED = 'has a camera moved'
harness_factory = node_harness.harness_factory   # the shared fixture


def test_monitor_scores_every_nth_pair_and_warns_only_on_a_sustained_drop():
    monitor = AlignmentMonitor()
    monitor.configure(every=3, calibrated=0.6, warn_ratio=0.5)
    assert [monitor.due() for _ in range(6)] == [False, False, True, False, False, True]
    for score in (0.58, 0.1, 0.62):          # one dull frame among good ones: quiet
        monitor.record(score)
    assert monitor.problem() is None and monitor.report()['alignment score'] == '0.580'
    for score in (0.12, 0.15, 0.2):
        monitor.record(score)
    assert 'below 0.5 x the calibrated 0.600' in monitor.problem()
    monitor.configure(every=3, calibrated=0.3, warn_ratio=0.5)   # recalibrated: old scores are forgotten
    assert monitor.problem() is None and monitor.current() is None
    monitor.configure(every=3, calibrated=0.0, warn_ratio=0.5)   # never calibrated: scores, never warns
    for score in (0.01, 0.01, 0.01):
        monitor.record(score)
    assert monitor.problem() is None and monitor.report()['alignment score at calibration'] == 'not set'


def rig_frames():
    """IR camera frames of a simulated rig, as calibrated and after a knock, the visible frame, the homography."""
    ir = cv2.imread(str(PAIRS / 'ir' / 'FLIR_04688.jpg'), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(PAIRS / 'vi' / 'FLIR_04688.jpg'))
    rng = np.random.default_rng(4)
    homography, ir_size = random_rig(rng, (vis.shape[1], vis.shape[0]))
    knock = np.array([[1, 0, 12.0], [0, 1, -8.0], [0, 0, 1]]) @ centred_similarity(
        1.0, 2.0, (vis.shape[1], vis.shape[0]), (vis.shape[1], vis.shape[0]))
    calibrated = render_ir(ir, homography, ir_size, rng=rng)
    knocked = render_ir(ir, np.linalg.inv(knock) @ homography, ir_size, rng=rng)
    return calibrated, knocked, vis, homography


def test_node_scores_stays_quiet_on_its_rig_and_warns_when_the_camera_is_knocked(harness_factory, tmp_path):
    calibrated_ir, knocked_ir, vis, homography = rig_frames()
    registration = make_registration('homography', homography)
    score = alignment_score(register_ir(calibrated_ir, vis.shape, registration), vis,
                            footprint_of(homography, calibrated_ir.shape, vis.shape))
    h = harness_factory(identity_model(tmp_path), diagnostics_period=0.1, registration__mode='homography',
                        registration__homography=[float(v) for v in homography.ravel()],
                        registration__calibrated_score=score, registration__score_every=1)
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()

    for second in range(1, 7):
        h.send(calibrated_ir, vis, second)
        assert wait_for(lambda: h.node.alignment.scored >= second), f'pair {second} was not scored'
    assert wait_for(lambda: any(kv.key == 'alignment score' and kv.value != 'none yet'
                                for s in statuses(diagnostics) for kv in s.values))
    assert not any(MOVED in s.message for s in statuses(diagnostics)), 'warned on an undisturbed rig'
    assert abs(h.node.alignment.current() - score) < 0.05
    for second in range(7, 13):                # the IR camera was knocked: 12 px and 2 degrees
        h.send(knocked_ir, vis, second)
        assert wait_for(lambda: h.node.alignment.scored >= second), f'pair {second} was not scored'
    assert wait_for(lambda: any(s.level == WARN and MOVED in s.message for s in statuses(diagnostics)))
    values = {kv.key: kv.value for kv in statuses(diagnostics)[-1].values}
    assert float(values['alignment score']) < 0.5 * score
    assert values['alignment score at calibration'] == f'{score:.3f}'


def test_a_failing_score_never_costs_the_fused_frame(harness_factory, tmp_path, monkeypatch):
    from sensor_msgs.msg import Image

    from fusion_ros.ros import node as node_module

    def broken(*_):
        raise ValueError('score broke')
    monkeypatch.setattr(node_module, 'alignment_score', broken)
    calibrated_ir, _, vis, homography = rig_frames()
    h = harness_factory(identity_model(tmp_path), registration__mode='homography',
                        registration__homography=[float(v) for v in homography.ravel()],
                        registration__score_every=1)
    fused = h.record(Image, '/fused/image')
    h.start()
    for second in (1, 2):
        h.send(calibrated_ir, vis, second)
        assert wait_for(lambda: len(fused) >= second), f'pair {second} was not fused'
    report = h.node.stats.report(h.node.pairer.stats)
    assert h.node.alignment.scored == 0 and report['inference failures'] == '0' and report['skipped pairs'] == '0'
