"""`fusion-ros fuse` on folders: pairing by stem, skipped files reported, exit codes."""

import shutil

import cv2
import pytest

from fusion_ros.cli.main import main
from tests.model_fixtures import PAIRS


def make_folders(tmp_path, names):
    ir, vis = tmp_path / 'ir', tmp_path / 'vi'
    ir.mkdir()
    vis.mkdir()
    for name in names:
        shutil.copy(next((PAIRS / 'ir').glob(name + '.*')), ir)
        shutil.copy(next((PAIRS / 'vi').glob(name + '.*')), vis)
    return ir, vis


def test_fuses_good_pairs_and_reports_the_rest(exported, tmp_path, capsys):
    ir, vis = make_folders(tmp_path, ['00091D', 'TNO_001'])
    (ir / 'lonely.png').write_bytes((PAIRS / 'ir' / '00091D.png').read_bytes())
    (ir / 'broken.png').write_bytes(b'not an image')
    (vis / 'broken.png').write_bytes((PAIRS / 'vi' / '00091D.png').read_bytes())
    out = tmp_path / 'out'
    code = main(['fuse', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--model', str(exported[0]),
                 '--quiet'])
    err = capsys.readouterr().err
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ['00091D.png', 'TNO_001.png']
    assert 'lonely.png' in err and 'no partner' in err
    assert 'broken.png' in err and 'cannot decode' in err
    assert cv2.imread(str(out / '00091D.png')).shape == (480, 640, 3)
    assert cv2.imread(str(out / 'TNO_001.png'), cv2.IMREAD_UNCHANGED).ndim == 2  # gray in, gray out


def test_exit_code_is_nonzero_only_when_nothing_fused(exported, tmp_path):
    ir, vis = make_folders(tmp_path, [])
    (ir / 'a.png').write_bytes(b'junk')
    (vis / 'a.png').write_bytes(b'junk')
    assert main(['fuse', '--ir', str(ir), '--vis', str(vis), '--out', str(tmp_path / 'o'),
                 '--model', str(exported[0]), '--quiet']) == 1


def test_missing_folder_and_bad_homography_exit_2(exported, tmp_path, capsys):
    assert main(['fuse', '--ir', str(tmp_path / 'nope'), '--vis', str(tmp_path), '--out', str(tmp_path / 'o'),
                 '--model', str(exported[0])]) == 2
    assert 'not a folder' in capsys.readouterr().err
    args = ['fuse', '--ir', str(tmp_path), '--vis', str(tmp_path), '--out', str(tmp_path / 'o'),
            '--model', str(exported[0]), '--registration', 'homography', '--homography', *['0'] * 9]
    assert main(args) == 2
    assert 'singular' in capsys.readouterr().err.lower()


def test_unavailable_backend_is_a_clear_error(tmp_path, capsys):
    # Real behaviour of this machine: TensorRT is not installed.
    code = main(['fuse', '--ir', str(PAIRS / 'ir'), '--vis', str(PAIRS / 'vi'), '--out', str(tmp_path),
                 '--backend', 'tensorrt', '--quiet'])
    assert code == 2 and 'needs the TensorRT Python bindings' in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_overflowing_homography_is_a_clear_error(exported, tmp_path, capsys):
    """F2 on the command line: 1e103 made the singularity check overflow into a traceback."""
    args = ['fuse', '--ir', str(tmp_path), '--vis', str(tmp_path), '--out', str(tmp_path / 'o'),
            '--model', str(exported[0]), '--registration', 'homography', '--homography', '1e103', *['0'] * 3, '1',
            *['0'] * 3, '1']
    assert main(args) == 2
    assert 'singular' in capsys.readouterr().err


@pytest.mark.parametrize('target', ['ir', 'vis'])
def test_out_equal_to_an_input_folder_is_refused(exported, tmp_path, capsys, target):
    """F6: --out equal to --vis (or --ir) overwrote the inputs and exited 0."""
    ir, vis = make_folders(tmp_path, ['00091D'])
    before = {p.name: p.read_bytes() for p in (ir / '00091D.png', vis / '00091D.png')}
    out = {'ir': ir, 'vis': vis}[target]
    code = main(['fuse', '--ir', str(ir), '--vis', str(vis), '--out', str(out / '.' / '..' / out.name),
                 '--model', str(exported[0]), '--quiet'])
    assert code == 2 and 'would overwrite the inputs' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (ir / '00091D.png', vis / '00091D.png')} == before


def test_output_folder_that_cannot_be_created_is_a_clear_error(exported, tmp_path, capsys):
    """F7: an output path under a file gave a traceback."""
    ir, vis = make_folders(tmp_path, ['00091D'])
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    code = main(['fuse', '--ir', str(ir), '--vis', str(vis), '--out', str(blocker / 'out'),
                 '--model', str(exported[0]), '--quiet'])
    err = capsys.readouterr().err
    assert code == 2 and 'cannot create the output folder' in err and str(blocker / 'out') in err


def test_two_files_with_one_stem_are_reported(exported, tmp_path, capsys):
    """F8: with same.jpg and same.png in one folder, one was ignored without a report."""
    ir, vis = make_folders(tmp_path, ['00091D'])
    image = cv2.imread(str(vis / '00091D.png'))
    cv2.imwrite(str(vis / '00091D.jpg'), image)
    out = tmp_path / 'out'
    assert main(['fuse', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--model', str(exported[0]),
                 '--quiet']) == 0
    err = capsys.readouterr().err
    assert 'skipped 00091D.png' in err and 'same name as 00091D.jpg' in err
    assert [p.name for p in out.iterdir()] == ['00091D.jpg']
