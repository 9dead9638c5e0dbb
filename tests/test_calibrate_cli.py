"""`fusion-ros calibrate`: the parameter file, check image and report of a known rig, and every bad input's error."""

from pathlib import Path
import shutil

import cv2
import numpy as np
import pytest
import yaml

from fusion_ros.cli.main import main
from fusion_ros.core.calibration.geometry import ir_pixel_error
from fusion_ros.core.registration import make_registration
from fusion_ros.evaluation.rig_simulation import folded_intensity, random_rig, render_ir
from fusion_ros.ros.bag import write_pairs_bag
from tests.test_calibration import PAIRS

NAMES = ['00091D.png', '00718N.png', '01028N.png']   # three: the full homography is fitted


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    """Folders ir/ and vi/ of a simulated rig (two scenes through one known homography) and the truth."""
    root = tmp_path_factory.mktemp('rig')
    (root / 'ir').mkdir()
    (root / 'vi').mkdir()
    rng = np.random.default_rng(21)
    truth, ir_size = random_rig(rng, (640, 480))
    for name in NAMES:
        vis = cv2.imread(str(PAIRS / 'vi' / name))
        cv2.imwrite(str(root / 'ir' / name), render_ir(folded_intensity(vis), truth, ir_size, rng=rng))
        shutil.copy(PAIRS / 'vi' / name, root / 'vi' / name)
    return root, truth, ir_size


def read_rig_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())['/**']['ros__parameters']


def test_folders_give_a_parameter_file_the_node_accepts_with_the_true_homography(rig, tmp_path, capsys):
    root, truth, ir_size = rig
    out = tmp_path / 'rig.yaml'
    assert main(['calibrate', '--ir', str(root / 'ir'), '--vis', str(root / 'vi'), '--out', str(out)]) == 0
    params = read_rig_yaml(out)
    assert params['registration.mode'] == 'homography' and len(params['registration.homography']) == 9
    matrix = make_registration('homography', params['registration.homography']).matrix
    assert ir_pixel_error(matrix, truth, ir_size, (640, 480))[0] < 0.7
    assert 0.2 < params['registration.calibrated_score'] <= 1.0
    check = cv2.imread(str(tmp_path / 'rig_check.png'))
    assert check is not None and check.shape[1] == 1280          # before | after panels
    report = (tmp_path / 'rig_report.md').read_text()
    assert 'IR -> visible homography' in report and '00091D' in report
    assert 'alignment score' in capsys.readouterr().out


def test_a_bag_is_paired_by_stamp_and_gives_the_same_answer(rig, tmp_path):
    root, truth, ir_size = rig
    bag = tmp_path / 'rig_bag'
    write_pairs_bag(root, bag, fps=5.0, ir_offset_s=0.004)   # IR stamped 4 ms after the visible frame
    out = tmp_path / 'rig.yaml'
    assert main(['calibrate', '--bag', str(bag), '--ir-topic', '/ir/image', '--vis-topic', '/visible/image',
                 '--out', str(out)]) == 0
    matrix = np.array(read_rig_yaml(out)['registration.homography']).reshape(3, 3)
    assert ir_pixel_error(matrix, truth, ir_size, (640, 480))[0] < 0.7


def test_a_bag_without_the_topics_is_an_error_naming_what_it_has(rig, tmp_path, capsys):
    root, _, _ = rig
    bag = tmp_path / 'rig_bag'
    write_pairs_bag(root, bag)
    assert main(['calibrate', '--bag', str(bag), '--ir-topic', '/thermal/image_raw', '--out',
                 str(tmp_path / 'rig.yaml')]) == 2
    err = capsys.readouterr().err
    assert '/thermal/image_raw' in err and '/ir/image' in err
    assert not (tmp_path / 'rig.yaml').exists()


def test_an_empty_folder_and_unpaired_names_are_errors(tmp_path, capsys):
    (tmp_path / 'ir').mkdir()
    (tmp_path / 'vi').mkdir()
    out = tmp_path / 'rig.yaml'
    assert main(['calibrate', '--ir', str(tmp_path / 'ir'), '--vis', str(tmp_path / 'vi'), '--out', str(out)]) == 2
    assert 'no image files' in capsys.readouterr().err
    shutil.copy(PAIRS / 'ir' / NAMES[0], tmp_path / 'ir' / 'a.png')
    shutil.copy(PAIRS / 'vi' / NAMES[0], tmp_path / 'vi' / 'b.png')
    assert main(['calibrate', '--ir', str(tmp_path / 'ir'), '--vis', str(tmp_path / 'vi'), '--out', str(out)]) == 2
    assert 'share a name' in capsys.readouterr().err
    assert main(['calibrate', '--ir', str(tmp_path / 'vi'), '--vis', str(tmp_path / 'vi'), '--out', str(out)]) == 2
    assert 'one modality only' in capsys.readouterr().err
    assert not out.exists()


def test_visible_images_given_as_ir_are_refused_without_a_parameter_file(tmp_path, capsys):
    (tmp_path / 'ir').mkdir()
    shutil.copy(PAIRS / 'vi' / NAMES[0], tmp_path / 'ir' / NAMES[0])
    out = tmp_path / 'rig.yaml'
    assert main(['calibrate', '--ir', str(tmp_path / 'ir'), '--vis', str(PAIRS / 'vi'), '--out', str(out)]) == 1
    assert 'look like one camera' in capsys.readouterr().err
    assert not out.exists() and 'Refused' in (tmp_path / 'rig_report.md').read_text()


def test_flat_frames_are_refused_for_too_little_structure(tmp_path, capsys):
    for folder in ('ir', 'vi'):
        (tmp_path / folder).mkdir()
    cv2.imwrite(str(tmp_path / 'ir' / 'x.png'), np.full((240, 320), 80, np.uint8))
    shutil.copy(PAIRS / 'vi' / NAMES[0], tmp_path / 'vi' / 'x.png')
    out = tmp_path / 'rig.yaml'
    assert main(['calibrate', '--ir', str(tmp_path / 'ir'), '--vis', str(tmp_path / 'vi'), '--out', str(out)]) == 1
    assert 'too little structure' in capsys.readouterr().err and not out.exists()
