"""
CPU cost of every shipped model against frame size: model-only and the whole node path, per thread count.

    .venv/bin/python benchmarks/cpu.py [--models models/realtime.onnx ...] [--sizes 320x240 640x480 ...]
        [--threads 1 2] [--duration 10] [--rate 30] [--out benchmarks/results/cpu.json]

* models: by default every ``models/*.onnx`` whose card describes a uint8 fusion graph (what the node
  loads; the int8 graphs included). Their ``_float`` twins run the same network with the colour
  maths in numpy and are left out unless named.
* model-only: ONNX Runtime ``backend.run`` on the 00091D MSRS pair resized to each size, repeated
  for ``duration`` seconds (at least ``min_runs`` calls) after a warm-up; ms per frame p50/p95.
* node: publisher -> fusion_node -> subscriber in one process over real Fast DDS
  (benchmarks/gpu.py's ``node_run``): pairs at ``rate`` Hz for ``duration`` s; fused frames/s,
  latency p50/p95 (visible stamp -> fused frame received), mailbox drops, node overhead.
* linearity: per model and thread count, a least-squares line ms = a + b * megapixels through
  the model-only p50s, its R^2, and ms per megapixel at each size (flat if cost is linear in pixels).

Writes JSON (``--out``), its tables as markdown (the JSON path with .md) and a log-log plot of ms per
frame against pixels (``--plot``, default the JSON path with .png). ``--paths`` adds the older 640x480
comparison of PyTorch eager, the float graph with numpy colour, the uint8 graph and a whole
``fusion-ros fuse`` process.
"""

import argparse
import json
from pathlib import Path
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu import machine, node_run, sample  # noqa: E402
from rig import percentiles, REPO, rounded_ms  # noqa: E402
from fusion_ros.core.model_card import load_card  # noqa: E402
from fusion_ros.core.pipeline import FusionPipeline  # noqa: E402

SIZES = ('320x240', '640x480', '1280x720', '1920x1080')
SAMPLE = ('00091D.png', REPO / 'tests' / 'data' / 'pairs')


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' (width x height) -> (480, 640) as (H, W); anything else is an argparse error."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}') from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f'size {text!r} is below 16x16')
    return height, width


def shipped_models(folder: Path) -> list[Path]:
    """Every graph in folder whose card is a uint8 fusion graph (the node's kind), sorted by name."""
    found = []
    for path in sorted(Path(folder).glob('*.onnx')):
        try:
            card = load_card(path, verify=False)
        except (FileNotFoundError, ValueError):
            continue
        if card.graph == 'uint8':
            found.append(path)
    return found


def model_label(path: Path) -> dict:
    """Name, method and precision of a graph, from its card (int8 graphs say so in their provenance)."""
    card = load_card(path, verify=False)
    precision = (card.provenance.get('quantization') or {}).get('precision', 'fp32')
    return {'file': path.name, 'method': card.method, 'graph': card.graph, 'precision': precision}


def time_calls(fn: Callable[[], object], duration: float, min_runs: int, warmup: int = 2) -> dict:
    """Call fn for `duration` seconds (at least min_runs times) after warm-up; ms per call percentiles."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - started < duration:
        begin = time.perf_counter()
        fn()
        times.append((time.perf_counter() - begin) * 1000)
    return {'runs': len(times), 'mean_ms': rounded_ms(statistics.mean(times)), 'ms': percentiles(times)}


def model_only(model: Path, hw: tuple[int, int], threads: int, duration: float, min_runs: int) -> dict:
    """Time backend.run on prepared uint8 inputs (registration and decoding are not the model)."""
    pipeline = FusionPipeline.from_model(model, threads=threads)
    try:
        ir8, vis_bgr = pipeline.prepare(*sample(hw))
        feeds = {'ir': np.ascontiguousarray(ir8), 'visible_bgr': np.ascontiguousarray(vis_bgr)}
        return time_calls(lambda: pipeline.backend.run(feeds), duration, min_runs)
    finally:
        pipeline.close()


def linear_fit(rows: list[dict]) -> dict:
    """Least-squares ms = a + b * MP through model-only p50s of one model and thread count, with R^2."""
    mp = np.array([r['megapixels'] for r in rows])
    ms = np.array([r['model_only']['ms']['p50'] for r in rows])
    per_mp = {r['size']: round(r['model_only']['ms']['p50'] / r['megapixels'], 1) for r in rows}
    if len(rows) < 2:
        return {'ms_per_megapixel_by_size': per_mp}
    slope, intercept = np.polyfit(mp, ms, 1)
    residual = ms - (intercept + slope * mp)
    spread = float(((ms - ms.mean()) ** 2).sum())
    r2 = 1.0 - float((residual ** 2).sum()) / spread if spread > 0 else 1.0
    return {'intercept_ms': round(float(intercept), 2), 'ms_per_megapixel': round(float(slope), 2),
            'r2': round(r2, 4), 'ms_per_megapixel_by_size': per_mp}


def sweep(models: list[Path], sizes: list[str], threads: list[int], args: argparse.Namespace,
          log: Callable[[str], None] = print) -> dict:
    """Every model x thread count x size: model-only, then (unless args.no_node) the node path; plus the fits."""
    runs, fits = [], []
    for model in models:
        label = model_label(model)
        for count in threads:
            rows = []
            for size in sizes:
                hw = parse_size(size)
                row = {**label, 'size': size, 'pixels': hw[0] * hw[1], 'megapixels': round(hw[0] * hw[1] / 1e6, 4),
                       'threads': count,
                       'model_only': model_only(model, hw, count, args.duration, args.min_runs)}
                if not args.no_node:
                    params = {'model_path': str(model), 'threads': count, 'pairing.mode': 'latest'}
                    row['node'] = node_run(params, *sample(hw), args.rate, args.duration)
                log(json.dumps(row))
                rows.append(row)
            fits.append({'file': model.name, 'threads': count, **linear_fit(rows)})
            runs += rows
    return {'runs': runs, 'fits': fits}


def read_earlier(out: Path) -> Optional[dict]:
    """
    Read the results --merge keeps, before the sweep: a damaged file stops the run at once, not after it.

    None when there is no file yet (the first --merge run simply writes one).
    """
    if not out.is_file():
        return None
    try:
        earlier = json.loads(out.read_text())
    except json.JSONDecodeError as err:
        raise SystemExit(f'--merge: {out} is not valid JSON ({err}); restore it (git checkout) or run without --merge')
    if not isinstance(earlier, dict) or not isinstance(earlier.get('runs'), list):
        raise SystemExit(f'--merge: {out} has no "runs" list, so it is not a benchmarks/cpu.py result')
    return earlier


def merge_results(old: dict, new: dict) -> dict:
    """
    Keep the old runs and fits of models this sweep did not measure, so one JSON can be built in parts.

    Why: a full sweep of every model takes longer than a quiet window on a shared machine; a model trained
    later is measured alone and added. Each part keeps its own command and machine under ``parts``.
    """
    def part(results: dict) -> dict:
        return {k: results[k] for k in ('command', 'machine', 'wall_s') if k in results}

    fresh = {r['file'] for r in new['runs']}
    merged = {**new, 'runs': [r for r in old.get('runs', []) if r['file'] not in fresh] + new['runs'],
              'fits': [f for f in old.get('fits', []) if f['file'] not in fresh] + new['fits']}
    earlier = old.get('parts') or [part(old)]        # a JSON written before --merge existed is its own first part
    merged['parts'] = [p for p in earlier if p] + [part(new)]
    return merged


def markdown(results: dict) -> str:
    """
    Tables for the README: model-only ms p50 and node fused frames/s per size, and the linear fit.

    One row per model and thread count, one column per size, so cost against pixels reads across a row.
    """
    sizes = list(dict.fromkeys(r['size'] for r in sorted(results['runs'], key=lambda r: r['pixels'])))
    cells = {(r['file'], r['threads'], r['size']): r for r in results['runs']}
    keys = sorted({(r['file'], r['threads']) for r in results['runs']})
    fits = {(f['file'], f['threads']): f for f in results['fits']}
    head = '| model | threads | ' + ' | '.join(sizes) + ' |\n|---|---:' + '|---:' * len(sizes) + '|'

    def table(title: str, value: Callable[[dict], str]) -> str:
        rows = []
        for name, count in keys:
            found = [cells.get((name, count, s)) for s in sizes]
            rows.append(f'| {name} | {count} | ' + ' | '.join('-' if r is None else value(r) for r in found) + ' |')
        return '\n'.join([title, '', head, *rows, ''])

    def node(row: dict) -> str:
        return '-' if 'node' not in row else f"{row['node']['fused_per_s']:.1f}"

    fit_rows = ['| model | threads | ms at 0 px | ms per megapixel | R^2 |', '|---|---:|---:|---:|---:|']
    fit_rows += [f"| {name} | {count} | {fits[(name, count)].get('intercept_ms', '-')} | "
                 f"{fits[(name, count)].get('ms_per_megapixel', '-')} | {fits[(name, count)].get('r2', '-')} |"
                 for name, count in keys if (name, count) in fits]
    return '\n'.join([table('Model-only, ms per frame (p50)', lambda r: f"{r['model_only']['ms']['p50']:.1f}"),
                      table(f"Whole node path, fused frames/s at {results.get('rate_hz', '?')} pairs/s", node),
                      'Linear fit of model-only ms against megapixels', '', *fit_rows, ''])


def plot(results: dict, path: Path) -> None:
    """Plot ms per frame against pixels, log-log: model-only solid, node latency p50 dashed, one colour per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 5.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    keys = sorted({(r['file'], r['threads']) for r in results['runs']})
    colours = {name: f'C{k % 10}' for k, name in enumerate(sorted({k[0] for k in keys}))}
    for name, count in keys:
        rows = sorted((r for r in results['runs'] if r['file'] == name and r['threads'] == count),
                      key=lambda r: r['pixels'])
        style = {'color': colours[name], 'marker': 'o' if count == 1 else 's', 'alpha': 1.0 if count > 1 else 0.6}
        axes.plot([r['pixels'] for r in rows], [r['model_only']['ms']['p50'] for r in rows], '-',
                  label=f'{name}, {count} thr', **style)
        node = [(r['pixels'], r['node']['latency_ms'].get('p50')) for r in rows if 'node' in r]
        node = [(p, v) for p, v in node if v is not None]
        if node:
            axes.plot(*zip(*node), '--', **style)
    axes.set_xscale('log')
    axes.set_yscale('log')
    axes.set_xlabel('pixels per frame')
    axes.set_ylabel('ms per frame (p50)')
    axes.set_title('model-only (solid) and node latency (dashed) against frame size')
    axes.axhline(1000 / 30, color='grey', linewidth=0.8, linestyle=':')
    axes.grid(True, which='both', alpha=0.3)
    if keys:
        axes.legend(fontsize='x-small', ncol=2)
    figure.tight_layout()
    figure.savefig(path, format='png')


def compare_paths(model: Path, threads: int, repeats: int, fuse_pairs: int) -> dict:
    """Time the 640x480 paths of README's first table: eager PyTorch, float graph, uint8 graph, fuse process."""
    ir, vis = sample((480, 640))
    float_model = model.with_name(model.stem + '_float.onnx')
    e2e = FusionPipeline.from_model(model, threads=threads)
    flt = FusionPipeline.from_model(float_model, threads=threads)
    return {'model': model.name, 'threads': threads,
            'pytorch_eager_fp32': bench_eager(model, ir, vis, threads, repeats),
            'onnxruntime_float_graph': time_calls(lambda: flt.fuse(ir, vis), 0.0, repeats, warmup=1),
            'onnxruntime_uint8_e2e_graph': time_calls(lambda: e2e.fuse(ir, vis), 0.0, repeats, warmup=1),
            'fuse_process': bench_fuse_process(model, threads, fuse_pairs)}


def bench_eager(model: Path, ir: np.ndarray, vis: np.ndarray, threads: int, repeats: int) -> dict:
    """Time the released code's way: the PyTorch module in eager fp32 (the card's weights), colour in numpy."""
    try:
        import torch
        from fusion_ros.networks.graphs import core_from_weights
    except ImportError as err:
        return {'skipped': f'torch not installed ({err})'}
    from fusion_ros.core.color import bgr_to_ycrcb, to_uint8, to_unit, ycrcb_to_bgr
    torch.set_num_threads(threads)
    from fusion_ros.backends.torch_backend import exported_weights
    net = core_from_weights(exported_weights(model, load_card(model, verify=False)))

    def run() -> np.ndarray:
        y, cr, cb = bgr_to_ycrcb(to_unit(vis))
        with torch.no_grad():
            fy = net(torch.from_numpy(y.astype(np.float32))[None, None], torch.from_numpy(to_unit(ir))[None, None])
        return to_uint8(ycrcb_to_bgr(fy[0][0, 0].numpy(), cr, cb))
    return {**time_calls(run, 0.0, repeats, warmup=1), 'torch': torch.__version__}


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


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Command line; sizes are checked here so a typo fails before any model loads."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', type=Path, help='graphs with cards (default: every shipped uint8 graph)')
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), help='WIDTHxHEIGHT, e.g. 640x480')
    parser.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    parser.add_argument('--duration', type=float, default=10.0, help='seconds of model-only calls and of node load')
    parser.add_argument('--min-runs', type=int, default=3, help='model-only calls at least, however long they take')
    parser.add_argument('--rate', type=float, default=30.0, help='pairs per second published to the node')
    parser.add_argument('--no-node', action='store_true', help='model-only numbers')
    parser.add_argument('--paths', action='store_true', help='add the 640x480 eager / float / uint8 / fuse comparison')
    parser.add_argument('--repeats', type=int, default=10, help='--paths: timed calls per path')
    parser.add_argument('--fuse-pairs', type=int, default=20, help='--paths: pairs of the fuse process')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'cpu.json')
    parser.add_argument('--plot', type=Path, help='PNG path (default: --out with .png)')
    parser.add_argument('--merge', action='store_true',
                        help='keep the runs of other models already in --out (replace only the models measured now)')
    args = parser.parse_args(argv)
    for size in args.sizes:
        try:
            parse_size(size)
        except argparse.ArgumentTypeError as err:
            parser.error(str(err))
    if any(t < 1 for t in args.threads):
        parser.error(f'--threads must be >= 1, got {args.threads}')
    return args


def main(argv: Optional[list[str]] = None) -> dict:
    """Run the sweep (and --paths), write JSON and the plot; returns the results."""
    args = parse_args(argv)
    models = args.models or shipped_models(REPO / 'models')
    if not models:
        raise SystemExit('no model to benchmark: no uint8 graph with a card in models/')
    earlier = read_earlier(args.out) if args.merge else None
    started = time.time()
    command = 'benchmarks/cpu.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    results = {'machine': machine(), 'command': command,
               'sample': SAMPLE[0], 'sizes': args.sizes, 'threads': args.threads, 'duration_s': args.duration,
               'rate_hz': args.rate, **sweep(models, args.sizes, args.threads, args)}
    if args.paths:
        results['paths'] = compare_paths(REPO / 'models' / 'seafusion.onnx', max(args.threads), args.repeats,
                                         args.fuse_pairs)
    results['wall_s'] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if earlier is not None:
        results = merge_results(earlier, results)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    plot_path = args.plot or args.out.with_suffix('.png')
    plot(results, plot_path)
    args.out.with_suffix('.md').write_text(markdown(results))
    print(markdown(results))
    print(f'wrote {args.out}, its .md and {plot_path} in {results["wall_s"]} s')
    return results


if __name__ == '__main__':
    main()
