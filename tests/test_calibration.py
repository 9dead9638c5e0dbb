"""
Cross-modal rig calibration (fusion_ros.core.calibration): known homographies are found, bad data is refused.

The rigs are simulated from the bundled pairs (tests/data/pairs, see DATA.md) with
fusion_ros.evaluation.rig_simulation. Where the exact answer matters, the "IR" frame is made from
the visible frame with a non-monotonic intensity map (edges keep their place but flip their
sign, as between thermal and visible), so the truth holds to the pixel; with the real IR frames
the truth also carries the data set's own registration error (a few pixels), so the bound is looser.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_ros.core.calibration.calibrate import calibrate
from fusion_ros.core.calibration.geometry import centred_similarity, ir_pixel_error
from fusion_ros.core.calibration.score import alignment_score, footprint_of
from fusion_ros.core.calibration.search import default_range, search
from fusion_ros.evaluation.rig_simulation import folded_intensity, random_rig, render_ir, RigRanges

PAIRS = Path(__file__).parent / 'data' / 'pairs'


def read_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    return (cv2.imread(str(PAIRS / 'ir' / name), cv2.IMREAD_GRAYSCALE),
            cv2.imread(str(PAIRS / 'vi' / name), cv2.IMREAD_COLOR))


def sizes(ir_frames, vis_frames):
    return (ir_frames[0].shape[1], ir_frames[0].shape[0]), (vis_frames[0].shape[1], vis_frames[0].shape[0])


def test_ir_pixel_error_is_zero_for_the_truth_and_the_shift_for_a_shifted_map():
    truth = centred_similarity(2.0, 3.0, (320, 240), (640, 480))
    assert ir_pixel_error(truth, truth, (320, 240), (640, 480))[0] == pytest.approx(0.0, abs=1e-9)
    shifted = np.array([[1, 0, 4.0], [0, 1, 0], [0, 0, 1]]) @ truth    # 4 visible px = 2 IR px at scale 2
    mean, worst = ir_pixel_error(shifted, truth, (320, 240), (640, 480))
    assert mean == pytest.approx(2.0, rel=1e-6) and worst == pytest.approx(2.0, rel=1e-6)


def test_search_lands_within_a_few_pixels_of_a_known_similarity():
    _, vis = read_pair('00091D.png')
    truth = np.array([[1, 0, 12.0], [0, 1, -9.0], [0, 0, 1]]) @ centred_similarity(1.7, 2.0, (320, 240), (640, 480))
    ir = render_ir(folded_intensity(vis), truth, (320, 240))
    best = search([(ir.astype(np.float32) / 255, cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255)],
                  default_range((320, 240), (640, 480)))[0]
    assert ir_pixel_error(best.homography, truth, (320, 240), (640, 480))[0] < 4.0
    assert best.scale == pytest.approx(1.7, rel=0.05)


@pytest.mark.parametrize('name', ['00091D.png', 'FLIR_04688.jpg'])
def test_a_random_rig_of_one_pair_is_recovered_to_a_pixel(name):
    rng = np.random.default_rng(11)
    _, vis = read_pair(name)
    truth, ir_size = random_rig(rng, (vis.shape[1], vis.shape[0]))
    ir = render_ir(folded_intensity(vis), truth, ir_size, rng=rng)
    result = calibrate([ir], [vis])
    assert result.ok, result.refusal
    # One pair is fitted affine (the rig's mild perspective is left): within a pixel, not a fraction.
    assert ir_pixel_error(result.homography, truth, ir_size, (vis.shape[1], vis.shape[0]))[0] < 1.0
    assert result.pairs[0].used and result.score > 0.3


def test_real_thermal_frames_of_a_random_rig_are_recovered_within_the_data_sets_own_error():
    rng = np.random.default_rng(5)
    ir_src, vis = read_pair('FLIR_04688.jpg')
    truth, ir_size = random_rig(rng, (vis.shape[1], vis.shape[0]))
    ir = render_ir(ir_src, truth, ir_size, rng=rng)
    resize_error = ir_pixel_error(np.diag([vis.shape[1] / ir_size[0], vis.shape[0] / ir_size[1], 1.0]), truth,
                                  ir_size, (vis.shape[1], vis.shape[0]))[0]
    result = calibrate([ir], [vis])
    assert result.ok, result.refusal
    error = ir_pixel_error(result.homography, truth, ir_size, (vis.shape[1], vis.shape[0]))[0]
    assert error < 3.0 < resize_error


def test_flat_frames_are_refused_for_too_little_structure():
    _, vis = read_pair('00091D.png')
    flat = np.full((240, 320), 90, np.uint8)
    result = calibrate([flat], [vis])
    assert not result.ok and result.homography is None
    assert 'too little structure' in result.refusal
    assert result.pairs[0].ir_structure < 0.02 and not result.pairs[0].used


def test_visible_frames_given_as_ir_are_refused():
    _, vis = read_pair('00091D.png')
    result = calibrate([cv2.resize(vis, (320, 240))], [vis])
    assert not result.ok and 'colour' in result.refusal


def test_frames_of_two_different_rigs_disagree_and_are_refused():
    rng = np.random.default_rng(3)
    ranges = RigRanges()
    names = ['00091D.png', '00718N.png', '01028N.png', 'TNO_020.png']
    first, ir_size = random_rig(rng, (640, 480), ranges)
    moved = np.array([[1, 0, 14.0], [0, 1, 10.0], [0, 0, 1]]) @ first     # the camera was knocked half way
    ir_frames, vis_frames = [], []
    for k, name in enumerate(names * 2):
        vis = cv2.resize(read_pair(name)[1], (640, 480))
        ir_frames.append(render_ir(folded_intensity(vis), first if k < 4 else moved, ir_size, rng=rng))
        vis_frames.append(vis)
    result = calibrate(ir_frames, vis_frames)
    assert not result.ok
    assert 'disagreeing frames' in result.refusal or 'ambiguous' in result.refusal, result.refusal


def test_only_pairs_whose_own_map_scores_higher_vote_on_agreement():
    rng = np.random.default_rng(3)
    names = ['00091D.png', '00718N.png', '01028N.png', 'TNO_020.png']
    truth, ir_size = random_rig(rng, (640, 480))
    vis_frames = [cv2.resize(read_pair(name)[1], (640, 480)) for name in names]
    ir_frames = [render_ir(folded_intensity(vis), truth, ir_size, rng=rng) for vis in vis_frames]
    result = calibrate(ir_frames, vis_frames)
    assert result.ok, result.refusal
    assert ir_pixel_error(result.homography, truth, ir_size, (640, 480))[0] < 0.7
    assert all(np.isfinite(d.own_correlation) for d in result.pairs)
    # A pair that ends lower on its own than at the joint answer has lost its way: no preference, no vote.
    assert all(np.isnan(d.deviation_px) == (d.own_correlation <= d.correlation) for d in result.pairs
               if d.own_correlation >= 0.3)


def test_unusable_input_raises_with_the_reason():
    _, vis = read_pair('00091D.png')
    with pytest.raises(ValueError, match='one or more'):
        calibrate([], [])
    with pytest.raises(ValueError, match='one size'):
        calibrate([np.zeros((240, 320), np.uint8), np.zeros((200, 320), np.uint8)], [vis, vis])


def test_alignment_score_drops_when_the_ir_camera_slips():
    ir, vis = read_pair('FLIR_04688.jpg')
    footprint = np.ones(vis.shape[:2], bool)
    aligned = alignment_score(ir, vis, footprint)
    slipped = np.array([[1, 0, 16.0], [0, 1, 8.0], [0, 0, 1]])
    moved = cv2.warpPerspective(ir, slipped, (vis.shape[1], vis.shape[0]))
    moved_score = alignment_score(moved, vis, footprint_of(slipped, ir.shape, vis.shape))
    assert aligned > 0.4 and moved_score < 0.6 * aligned
    with pytest.raises(ValueError, match='register the IR first'):
        alignment_score(ir[:100], vis)
