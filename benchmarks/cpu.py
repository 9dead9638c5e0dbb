"""
CPU speed of SeAFusion at 640x480: PyTorch eager vs ONNX Runtime float vs ONNX Runtime uint8 end-to-end.

    .venv/bin/python benchmarks/cpu.py [--threads 2] [--repeats 10] [--out benchmarks/results/cpu.json]

Per-frame times are medians over `repeats` runs after one warm-up. The `fuse_process`
entry times the whole `fusion-ros fuse` process (interpreter start, model load,
PNG decode/encode included) over a folder of `fuse_pairs` copies of one sample
pair, and divides by the pair count. Prints and saves JSON.
"""

import argparse
import json
import os
from pathlib import Path
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusion_ros.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.pipeline import FusionPipeline  # noqa: E402

SAMPLE = ('00091D.png', REPO / 'tests' / 'data' / 'pairs')


def median_ms(fn, repeats: int) -> dict:
    """Warm up once, then time repeats calls."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {'median_ms': round(statistics.median(times), 1), 'min_ms': round(min(times), 1), 'runs': repeats}


def bench_eager(ir: np.ndarray, vis: np.ndarray, threads: int, repeats: int) -> dict:
    """Time the released code's way: the PyTorch module in eager fp32, colour in numpy."""
    try:
        import torch
        from fusion_ros.networks.seafusion import SeAFusion
    except ImportError as err:
        return {'skipped': f'torch not installed ({err})'}
    from fusion_ros.color import bgr_to_ycrcb, to_uint8, to_unit, ycrcb_to_bgr
    torch.set_num_threads(threads)
    net = SeAFusion().eval()

    def run():
        y, cr, cb = bgr_to_ycrcb(to_unit(vis))
        with torch.no_grad():
            fy = net(torch.from_numpy(y.astype(np.float32))[None, None], torch.from_numpy(to_unit(ir))[None, None])
        return to_uint8(ycrcb_to_bgr(fy[0, 0].numpy(), cr, cb))
    return {**median_ms(run, repeats), 'torch': torch.__version__}


def bench_fuse_process(model: Path, threads: int, pairs: int) -> dict:
    """Wall time of one `fusion-ros fuse` process over `pairs` copies of the sample pair."""
    name, folder = SAMPLE
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for sub in ('ir', 'vi'):
            (tmp / sub).mkdir()
            for k in range(pairs):
                shutil.copy(folder / sub / name, tmp / sub / f'{k:03d}.png')
        cmd = [sys.executable, '-m', 'fusion_ros.cli', 'fuse', '--ir', str(tmp / 'ir'), '--vis', str(tmp / 'vi'),
               '--out', str(tmp / 'out'), '--model', str(model), '--threads', str(threads), '--quiet']
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        seconds = time.perf_counter() - started
    return {'pairs': pairs, 'seconds': round(seconds, 2), 'ms_per_pair': round(seconds / pairs * 1000, 1)}


def main() -> None:
    """Run every benchmark and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--fuse-pairs', type=int, default=20)
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'seafusion.onnx')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'cpu.json')
    args = parser.parse_args()
    name, folder = SAMPLE
    ir, vis = read_ir(folder / 'ir' / name), read_visible(folder / 'vi' / name)
    float_model = args.model.with_name(args.model.stem + '_float.onnx')
    e2e = FusionPipeline.from_model(args.model, threads=args.threads)
    flt = FusionPipeline.from_model(float_model, threads=args.threads)
    results = {
        'machine': {'cpu': platform.processor() or platform.machine(), 'cores': os.cpu_count(),
                    'python': platform.python_version()},
        'frame': list(vis.shape), 'threads': args.threads,
        'pytorch_eager_fp32': bench_eager(ir, vis, args.threads, args.repeats),
        'onnxruntime_float_graph': median_ms(lambda: flt.fuse(ir, vis), args.repeats),
        'onnxruntime_uint8_e2e_graph': median_ms(lambda: e2e.fuse(ir, vis), args.repeats),
        'fuse_process': bench_fuse_process(args.model, args.threads, args.fuse_pairs),
    }
    eager = results['pytorch_eager_fp32'].get('median_ms')
    if eager:
        results['speedup_vs_eager'] = {
            'uint8_e2e_graph': round(eager / results['onnxruntime_uint8_e2e_graph']['median_ms'], 2),
            'fuse_process': round(eager / results['fuse_process']['ms_per_pair'], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
