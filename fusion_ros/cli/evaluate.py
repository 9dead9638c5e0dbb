"""
`fusion-ros evaluate`: score folders of fused images with the standard fusion metrics.

Fused files are matched to the IR + visible pairs by file stem (a fused image
keeps the visible file's name; extensions may differ). Metrics follow the
CDDFuse evaluator conventions (see fusion_ros.evaluation.metrics) so that the numbers can
be set beside published tables. Several methods can be compared at once
(--extra NAME=DIR), optionally together with the trivial pixel-wise max and
mean fusions of the sources (--baselines), which every learned method should
beat. Missing partners and unreadable files are reported and skipped. With
--segmenter and --masks it also runs the task-driven evaluation: mIoU of one
segmenter on the visible, infrared and every fused image (fusion_ros.evaluation.task_eval). With --boxes
it reports how much of each labelled target's contrast every method keeps (fusion_ros.evaluation.target_contrast).

Writes per_image.csv (main method), per_image_<method>.csv (the others),
summary.json, summary.md and one cdf_<metric>.png per metric.
"""

import argparse
import os
from pathlib import Path
import sys

from fusion_ros.cli.arguments import add_folder_arguments
from fusion_ros.evaluation import evaluate, target_contrast
from fusion_ros.evaluation.mask_io import MASK_FORMATS
from fusion_ros.evaluation.task_eval import SegmenterRunner, segmentation_markdown, segmentation_scores, \
    write_segmentation_report


def _extra(text: str) -> tuple[str, Path]:
    """Parse NAME=DIR for argparse, so malformed values fail at parse time with a usage message."""
    name, sep, folder = text.partition('=')
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f'expected NAME=DIR, got {text!r}')
    return name.strip(), Path(folder)


def add_parser(subparsers) -> None:
    """Register the `evaluate` sub-command."""
    parser = subparsers.add_parser('evaluate', help='score fused images with the standard fusion metrics',
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_folder_arguments(parser, fused='folder of fused images (visible file names)',
                         ir='folder of infrared source images', vis='folder of visible source images (same stems)',
                         out='report folder (created)')
    parser.add_argument('--baselines', action='store_true',
                        help="also score pixel-wise 'max' and 'mean' fusion of the sources")
    parser.add_argument('--workers', type=int, default=None,
                        help='worker processes (default: all cores; 1 runs inline)')
    parser.add_argument('--extra', type=_extra, action='append', default=[], metavar='NAME=DIR',
                        help='another method to compare, labelled NAME (repeatable)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    task = parser.add_argument_group('task-driven evaluation (mIoU of one segmenter on each input)')
    task.add_argument('--segmenter', type=Path, help="segmenter graph with a card of kind 'segment', "
                      'e.g. models/seafusion_seg_segmenter.onnx')
    task.add_argument('--masks', type=Path, help='folder of ground-truth masks named like the visible images')
    task.add_argument('--mask-format', default='yolo_boxes', choices=MASK_FORMATS,
                      help='yolo_boxes: MSRS detection boxes; msrs_labels: MSRS 9-class PNGs; ecssd: 0/255 PNGs')
    targets = parser.add_argument_group('target contrast (do labelled people and vehicles stay distinct?)')
    targets.add_argument('--boxes', type=Path, help='folder of YOLO box files (class cx cy w h) named like the '
                         'visible images, e.g. msrs/boxes: writes target_contrast.{json,md,csv} and its CDF')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """
    Execute `evaluate` and print the summary table.

    Exit status 2 on a usage error (bad folder, nothing matched), 1 when a method had no image that
    could be scored (reports of nothing must not look like success), else 0.
    """
    reserved = set(evaluate.BASELINES) if args.baselines else set()
    extras = dict(args.extra)
    main = Path(os.path.abspath(args.fused)).name or 'fused'
    if main in extras or main in reserved:
        main = 'fused'
    try:
        if len(extras) != len(args.extra):
            raise ValueError('--extra names must be unique')
        if args.workers is not None and args.workers < 1:
            raise ValueError(f'--workers must be at least 1, got {args.workers}')
        methods = {main: args.fused, **extras}
        if bool(args.segmenter) != bool(args.masks):
            raise ValueError('--segmenter and --masks go together')
        segmenter = SegmenterRunner(args.segmenter) if args.segmenter else None
        summary = evaluate.evaluate_folders(methods, args.ir, args.vis, args.out, baselines=args.baselines,
                                            workers=args.workers, progress=not args.quiet)
        if segmenter:
            scores = segmentation_scores(segmenter, {'visible': args.vis, 'infrared': args.ir, **methods},
                                         args.masks, args.mask_format, progress=not args.quiet)
            write_segmentation_report(scores, args.out, args.segmenter, args.masks)
        if args.boxes:
            rows = target_contrast.target_contrast_rows(methods, args.ir, args.vis, args.boxes,
                                                        baselines=args.baselines, progress=not args.quiet)
            contrast = target_contrast.write_report(rows, args.out, args.boxes)
    except (ValueError, OSError) as err:   # OSError: a folder missing, or the report folder cannot be made
        print(f'fusion-ros evaluate: error: {err}', file=sys.stderr)
        return 2
    print(evaluate.markdown(summary), end='')
    if segmenter:
        print(segmentation_markdown(scores), end='')
    if args.boxes:
        print('\nTarget contrast retention\n\n' + target_contrast.markdown(contrast), end='')
    print(f'reports written to {args.out}')
    unscored = [m for m in methods if not any(stats['n'] for stats in summary[m].values())]
    for method in unscored:
        print(f'fusion-ros evaluate: error: no image of {method} could be scored: every one was skipped '
              '(see the warnings above)', file=sys.stderr)
    return 1 if unscored else 0
