"""benchmarks/registration.py: the independent measurement of a data set's own registration finds a known one."""

from pathlib import Path
import sys

import cv2
import numpy as np
import pytest

from fusion_ros.core.calibration.geometry import ir_pixel_error
from fusion_ros.evaluation.rig_simulation import folded_intensity
from tests.test_calibration import read_pair

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'benchmarks'))

import registration  # noqa: E402


def misregistered(vis: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """An 'IR' frame of vis whose content at q is the visible content at matrix @ q: registered that far off."""
    return cv2.warpPerspective(folded_intensity(vis), matrix, (vis.shape[1], vis.shape[0]),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize('matrix', [np.eye(3), np.array([[0.99, 0, 4.5], [0, 1.0, -1.3], [0, 0, 1]])],
                         ids=['registered', 'one_percent_narrow_and_shifted'])
def test_measured_registration_finds_a_known_misregistration(matrix):
    _, vis = read_pair('00091D.png')
    measured = registration.measured_registration([(misregistered(vis, matrix), vis)])
    found = np.array(measured['matrix']).reshape(3, 3)
    size = (vis.shape[1], vis.shape[0])
    assert ir_pixel_error(found, matrix, size, size)[0] < 0.35   # an estimate: 0.1-0.3 px on such pairs
    assert measured['tiles_used'] >= 8


def test_best_shift_is_sub_pixel_and_refuses_a_peak_on_the_edge_of_the_search():
    _, vis = read_pair('00091D.png')
    shifted = misregistered(vis, np.array([[1, 0, 2.4], [0, 1, -1.6], [0, 0, 1.0]]))
    ir_field = registration.orientation_field(registration.to_gray_float(shifted))
    vis_field = registration.orientation_field(registration.to_gray_float(vis))
    dx, dy, peak = registration.best_shift(ir_field, vis_field, (100, 100, 400, 350), 6)
    assert dx == pytest.approx(2.4, abs=0.3) and dy == pytest.approx(-1.6, abs=0.3) and peak > 0.5
    far = registration.best_shift(ir_field, vis_field, (100, 100, 400, 350), 2)
    assert np.isnan(far[0])
