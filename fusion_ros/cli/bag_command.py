"""
`fusion-ros bag`: make a rosbag from paired image folders, or replay one through fusion_node.

    fusion-ros bag make --pairs DIR --out BAG [--fps 10] [--storage sqlite3|mcap] [--compressed [--jpeg-quality 90]]
    fusion-ros bag replay --bag BAG --out DIR [--model PATH] [--realtime]
"""

import argparse
from pathlib import Path
import sys


def add_parser(subparsers) -> None:
    """Register `bag make` and `bag replay`."""
    parser = subparsers.add_parser('bag', help='make a rosbag from image pairs, or replay one through the node',
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest='verb', required=True)
    make = verbs.add_parser('make', help='write the pairs of DIR/ir and DIR/vi as sensor_msgs/Image messages')
    make.add_argument('--pairs', required=True, type=Path, help='folder with ir/ and vi/ sub-folders')
    make.add_argument('--out', required=True, type=Path, help='bag folder to create (must not exist)')
    make.add_argument('--fps', type=float, default=10.0)
    make.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    make.add_argument('--compressed', action='store_true',
                      help='write sensor_msgs/CompressedImage on <topic>/compressed: IR as PNG (16-bit kept), '
                           'visible as JPEG')
    make.add_argument('--jpeg-quality', type=int, default=90, help='JPEG quality of the visible frames (1..100)')
    replay = verbs.add_parser('replay', help='fuse every pair of a bag with fusion_node; quality + latency report')
    replay.add_argument('--bag', required=True, type=Path)
    replay.add_argument('--out', required=True, type=Path, help='report folder')
    replay.add_argument('--model', type=Path, help='ONNX model with card (default: shipped SeAFusion)')
    replay.add_argument('--ir-topic', default='/ir/image', help='base topic; <topic>/compressed is used when the '
                        'bag holds CompressedImage there')
    replay.add_argument('--vis-topic', default='/visible/image', help='base topic, as --ir-topic')
    replay.add_argument('--realtime', action='store_true',
                        help="publish at the bag's pace (latency, drops) instead of one pair at a time")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch the verb; errors are printed and give exit code 2."""
    try:
        if args.verb == 'make':
            from fusion_ros.ros.bag import write_pairs_bag
            count = write_pairs_bag(args.pairs, args.out, fps=args.fps, storage=args.storage,
                                    compressed=args.compressed, jpeg_quality=args.jpeg_quality)
            print(f'wrote {count} pairs to {args.out}')
            return 0
        from fusion_ros.ros.replay import replay_bag, write_report
        result = replay_bag(args.bag, args.model, args.ir_topic, args.vis_topic, realtime=args.realtime)
        report = write_report(result, args.bag, args.out)
    except (ValueError, FileNotFoundError, FileExistsError, TimeoutError, RuntimeError) as err:
        print(f'fusion-ros bag {args.verb}: error: {err}', file=sys.stderr)
        return 2
    print(f"fused {report['fused']}/{report['pairs_sent']} pairs, latency p50 {report['latency_ms']['p50']:.0f} ms, "
          f"p95 {report['latency_ms']['p95']:.0f} ms, dropped {report['dropped']}; report: {args.out}/report.json")
    return 0
