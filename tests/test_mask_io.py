"""Ground-truth masks: YOLO boxes, MSRS 9-class label PNGs and ECSSD masks, on real and generated files."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_ros.core.imageio import read_visible
from fusion_ros.evaluation.mask_io import boxes_to_mask, mask_path, MSRS_TO_BOX, parse_yolo_boxes, read_mask

DATA = Path(__file__).parent / 'data'


def test_real_msrs_boxes_become_car_rectangles():
    shape = read_visible(DATA / 'pairs' / 'vi' / '00091D.png').shape[:2]
    mask = read_mask(DATA / 'boxes' / '00091D.txt', 'yolo_boxes', shape)
    assert mask.shape == shape and set(np.unique(mask)) == {0, 3}      # four cars (class 2 -> id 3)
    cls, cx, cy, w, h = parse_yolo_boxes((DATA / 'boxes' / '00091D.txt').read_text())[0]
    assert mask[round(cy * shape[0]), round(cx * shape[1])] == cls + 1
    assert mask[0, 0] == 0


def test_small_box_in_front_of_a_large_one_keeps_its_class():
    mask = boxes_to_mask([(0, 0.5, 0.5, 0.1, 0.2), (2, 0.5, 0.5, 0.8, 0.8)], 100, 100)   # person listed first
    assert mask[50, 50] == 1 and mask[20, 20] == 3 and mask[5, 5] == 0


def test_empty_box_file_is_all_background(tmp_path):
    path = tmp_path / 'x.txt'
    path.write_text('')
    assert not read_mask(path, 'yolo_boxes', (4, 6)).any()


def test_bad_box_lines_name_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r'f.txt:2: expected "class cx cy w h"'):
        parse_yolo_boxes('0 .5 .5 .1 .1\n0 .5 .5\n', 'f.txt')
    with pytest.raises(ValueError, match=r'f.txt:1: class 7 is not one of 0..2'):
        parse_yolo_boxes('7 .5 .5 .1 .1\n', 'f.txt')


def test_msrs_label_png_maps_to_box_classes(tmp_path):
    labels = np.arange(9, dtype=np.uint8).repeat(2).reshape(3, 6)
    cv2.imwrite(str(tmp_path / 'a.png'), labels)
    mask = read_mask(tmp_path / 'a.png', 'msrs_labels', (3, 6))
    np.testing.assert_array_equal(mask, MSRS_TO_BOX[labels])
    assert mask[labels == 1].tolist() == [3, 3] and mask[labels == 2].tolist() == [1, 1]   # car, person
    assert mask[labels == 3].tolist() == [2, 2] and not mask[labels >= 4].any()           # bike; rest background
    cv2.imwrite(str(tmp_path / 'bad.png'), np.full((3, 6), 9, np.uint8))
    with pytest.raises(ValueError, match='label id 9 outside the 9 MSRS classes'):
        read_mask(tmp_path / 'bad.png', 'msrs_labels', (3, 6))


def test_ecssd_mask_is_thresholded_at_mid_grey(tmp_path):
    cv2.imwrite(str(tmp_path / 'm.png'), np.array([[0, 100, 128, 200, 255]], np.uint8))
    np.testing.assert_array_equal(read_mask(tmp_path / 'm.png', 'ecssd', (1, 5)), [[0, 0, 1, 1, 1]])
    cv2.imwrite(str(tmp_path / 'rgb.png'), np.zeros((1, 5, 3), np.uint8))
    with pytest.raises(ValueError, match='must be single-channel'):
        read_mask(tmp_path / 'rgb.png', 'ecssd', (1, 5))


def test_size_mismatch_and_unknown_format_are_named(tmp_path):
    cv2.imwrite(str(tmp_path / 'm.png'), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match='is 5x4, its image is 6x3'):
        read_mask(tmp_path / 'm.png', 'ecssd', (3, 6))
    with pytest.raises(ValueError, match="unknown mask format 'coco'"):
        mask_path(tmp_path, 'm', 'coco')
    assert mask_path(tmp_path, '00091D', 'msrs_labels') == tmp_path / '00091D.png'
