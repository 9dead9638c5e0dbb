"""
`fusion-ros calibrate`: find the IR -> visible homography of a rig from frame pairs, or refuse.

    fusion-ros calibrate --ir DIR --vis DIR --out rig.yaml [--max-pairs 8]
    fusion-ros calibrate --bag BAG --ir-topic T --vis-topic T --out rig.yaml [--slop 0.02]

Writes rig.yaml (a ROS 2 parameter file for fusion_node: registration.mode homography, the 9
numbers row-major taking IR pixels to visible pixels, and the calibrated alignment score the node
compares its running score with), rig_check.png (IR edges on the visible frame, before and
after) and rig_report.md beside it. Exit status 0 with an answer, 1 when the data cannot support
one (the reason is printed and no parameter file is written), 2 for bad input.
"""

import argparse
import math
from pathlib import Path
import sys
from typing import Optional

import numpy as np
import yaml

from fusion_ros.core.calibration.calibrate import Calibration, calibrate
from fusion_ros.core.calibration.check_image import check_image
from fusion_ros.core.calibration.score import alignment_score, footprint_of
from fusion_ros.core.imageio import pair_folders, read_ir, read_visible, write_bytes_atomic, write_image_atomic
from fusion_ros.core.registration import make_registration, register_ir

DEFAULT_SLOP = 0.02   # the node's pairing.slop default (config/fusion.yaml)


def add_parser(subparsers) -> None:
    """Register `calibrate`."""
    parser = subparsers.add_parser('calibrate', help="estimate the rig's IR -> visible homography (rig.yaml)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--ir', type=Path, help='folder of IR frames (paired with --vis by file name)')
    parser.add_argument('--vis', type=Path, help='folder of visible frames')
    parser.add_argument('--bag', type=Path, help='rosbag2 bag instead of folders')
    parser.add_argument('--ir-topic', default='/ir/image', help='IR topic of --bag (raw or <topic>/compressed)')
    parser.add_argument('--vis-topic', default='/visible/image', help='visible topic of --bag')
    parser.add_argument('--slop', type=float, default=DEFAULT_SLOP,
                        help='largest |IR - visible| stamp difference of a bag pair, seconds (as the node)')
    parser.add_argument('--out', type=Path, required=True, help='parameter file to write (rig.yaml)')
    parser.add_argument('--max-pairs', type=int, default=8, help='pairs used, spread evenly over the input')
    parser.set_defaults(func=run)


def folder_frames(ir_dir: Path, vis_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, IR, visible) of every pair of two folders; ValueError naming what is missing."""
    for folder, what in ((ir_dir, '--ir'), (vis_dir, '--vis')):
        if not Path(folder).is_dir():
            raise ValueError(f'{what} {folder} is not a folder')
    pairing = pair_folders(ir_dir, vis_dir)
    if not pairing.pairs:
        if not pairing.ir_only and not pairing.vis_only:
            raise ValueError(f'no image files in {ir_dir} or {vis_dir}')
        raise ValueError(f'no IR and visible files share a name: {len(pairing.ir_only)} IR-only '
                         f'({", ".join(p.name for p in pairing.ir_only[:3]) or "none"}), '
                         f'{len(pairing.vis_only)} visible-only '
                         f'({", ".join(p.name for p in pairing.vis_only[:3]) or "none"}); pairs need equal names')
    return [(ir.stem, read_ir(ir), read_visible(vis)) for ir, vis in pairing.pairs]


def bag_frames(bag: Path, ir_topic: str, vis_topic: str, slop: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stamp, IR, visible) of the pairs of a bag, paired by stamp with the node's pairer."""
    from fusion_ros.ros.bag import camera_topic, read_bag_images
    from fusion_ros.ros.codec import message_to_array, to_bgr, to_mono
    from fusion_ros.ros.node import stamp_ns
    from fusion_ros.ros.pairing import IR, make_pairer, VISIBLE

    ir_topic, vis_topic = camera_topic(bag, ir_topic)[0], camera_topic(bag, vis_topic)[0]
    if ir_topic == vis_topic:
        raise ValueError(f'--ir-topic and --vis-topic are the same topic ({ir_topic}): one modality only')
    pairer = make_pairer('approximate', 10, slop)
    frames = []
    for topic, _, msg in read_bag_images(bag, [ir_topic, vis_topic]):
        if not hasattr(msg, 'data'):
            continue   # CameraInfo
        pair = pairer.add(IR if topic == ir_topic else VISIBLE, stamp_ns(msg), msg)
        if pair is not None:
            ir, vis = (message_to_array(m) for m in pair)
            frames.append((str(stamp_ns(pair[1])), to_mono(*ir), to_bgr(*vis)))
    if not frames:
        raise ValueError(f'{bag}: no IR/visible pair on {ir_topic} and {vis_topic} within {slop} s')
    return frames


def spread(items: list, count: int) -> list:
    """Pick count items spread evenly over the list (all of them if there are fewer)."""
    if len(items) <= count:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def rig_parameters(result: Calibration, score: float) -> dict:
    """Build the ROS 2 parameter file content of an accepted calibration."""
    return {'/**': {'ros__parameters': {
        'registration.mode': 'homography',
        'registration.homography': [float(f'{v:.9g}') for v in result.homography.ravel()],
        'registration.calibrated_score': round(float(score), 4),
    }}}


def _cell(value: float, digits: int) -> str:
    """Format a table cell; NaN (a pair with no map of its own, or one it does not prefer) stays empty."""
    return '' if math.isnan(value) else f'{value:.{digits}f}'


def report(result: Calibration, names: list[str], score: Optional[float], source: str) -> str:
    """Write a short Markdown report: the answer or the refusal, the score, and what each pair contributed."""
    lines = [f'# Rig calibration ({source})', '']
    if result.ok:
        rows = '\n'.join('    ' + '  '.join(f'{v:12.6g}' for v in row) for row in result.homography)
        lines += ['IR -> visible homography (row-major, IR pixels to visible pixels):', '', rows, '',
                  f'Edge-field correlation at the answer: {result.score:.3f}; the node\'s alignment score '
                  f'(registration.calibrated_score, median over pairs): {score:.3f}.']
    else:
        lines += [f'**Refused**: {result.refusal}', '', 'No parameter file was written.']
    lines += ['', '| pair | IR edges | visible edges | used | correlation | own map\'s correlation '
              '| own map vs joint (IR px; blank unless it scores higher) |', '|---|---:|---:|---|---:|---:|---:|']
    for d in result.pairs:
        lines.append(f'| {names[d.index]} | {d.ir_structure:.3f} | {d.vis_structure:.3f} | {"yes" if d.used else "no"} '
                     f'| {d.correlation:.3f} | {_cell(d.own_correlation, 3)} | {_cell(d.deviation_px, 2)} |')
    lines += [''] + [f'- {note}' for note in result.notes]
    return '\n'.join(lines) + '\n'


def run(args: argparse.Namespace) -> int:
    """Calibrate; 0 with an answer, 1 when refused, 2 for bad input."""
    try:
        if args.bag is not None:
            if args.ir is not None or args.vis is not None:
                raise ValueError('give either --bag or --ir and --vis, not both')
            frames, source = bag_frames(args.bag, args.ir_topic, args.vis_topic, args.slop), str(args.bag)
        elif args.ir is None or args.vis is None:
            raise ValueError('give --ir and --vis folders, or --bag')
        else:
            if Path(args.ir).resolve() == Path(args.vis).resolve():
                raise ValueError(f'--ir and --vis are the same folder ({args.ir}): one modality only')
            frames, source = folder_frames(args.ir, args.vis), f'{args.ir} + {args.vis}'
        if args.max_pairs < 1:
            raise ValueError(f'--max-pairs must be at least 1, got {args.max_pairs}')
        frames = spread(frames, args.max_pairs)
        names = [name for name, _, _ in frames]
        result = calibrate([ir for _, ir, _ in frames], [vis for _, _, vis in frames])
    except (ValueError, FileNotFoundError) as err:
        print(f'fusion-ros calibrate: error: {err}', file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    score = None
    if result.ok:
        scores = []
        for _, ir, vis in frames:
            warped = register_ir(ir, vis.shape, make_registration('homography', result.homography))
            scores.append(alignment_score(warped, vis, footprint_of(result.homography, ir.shape, vis.shape)))
        score = float(np.median(scores))
        _, ir, vis = frames[0]
        before = np.diag([vis.shape[1] / ir.shape[1], vis.shape[0] / ir.shape[0], 1.0])
        write_image_atomic(out.with_name(out.stem + '_check.png'), check_image(ir, vis, before, result.homography))
        write_bytes_atomic(out, yaml.safe_dump(rig_parameters(result, score), sort_keys=False).encode())
    write_bytes_atomic(out.with_name(out.stem + '_report.md'), report(result, names, score, source).encode())
    if not result.ok:
        print(f'fusion-ros calibrate: refused: {result.refusal}', file=sys.stderr)
        return 1
    print(f'wrote {out} (alignment score {score:.3f}, {sum(d.used for d in result.pairs)} of {len(frames)} pairs '
          f'used), {out.stem}_check.png and {out.stem}_report.md')
    return 0
