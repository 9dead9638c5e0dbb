"""
Compare every shipped model on the same held-out pairs; each card keeps its own rows and points here.

    python -m training.evaluation.compare --models models/seafusion.onnx models/seafusion_seg.onnx \
        models/sgfusion.onnx --runs runs/seafusion runs/seafusion_seg runs/sgfusion \
        --config training/configs/seafusion_seg.yaml --segmenter models/seafusion_seg_segmenter.onnx \
        --out models/comparison --timings benchmarks/results/cpu.json

The runs must have held out the same pairs (same source, seed and count: checked). The held-out
pairs are fused by each model through the runtime pipeline, scored with the metrics of
metrics.md beside the pixel max and mean baselines, and, with ``--segmenter``, by the task-driven
evaluation (mIoU of one segmenter on visible, infrared and each fused image, against the masks of
the config's held-out source), and, where that source has YOLO boxes, by target contrast (how much of
each labelled person's or vehicle's contrast survives, fusion_ros.evaluation.target_contrast). Tables go to
``--out`` (summary.md, relative.md: each metric as a fraction of the ``--reference`` model's, segmentation.md,
target_contrast.md, with ``--timings`` speed.md, and JSON) with
``grid.png`` (2 day and 2 night scenes: IR, visible and every model side by side). Each model's card
(uint8 and float) gets a ``comparison`` entry with its own rows only and the path of comparison.json.
Speeds are read from a benchmarks/cpu.py sweep (``--timings``), never timed here, so the comparison may
run beside other work.
"""

import argparse
import json
import os
from pathlib import Path
import sys
from typing import Optional

import cv2

from fusion_ros.cli.fuse import fuse_folders, FuseReport
from fusion_ros.core.imageio import list_images, read_image
from fusion_ros.core.model_card import card_path_for
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.evaluation.evaluate import evaluate_folders
from fusion_ros.evaluation.plots import image_grid
from fusion_ros.evaluation.target_contrast import markdown as target_markdown, target_contrast_rows, write_report
from fusion_ros.evaluation.task_eval import SegmenterRunner, segmentation_markdown, segmentation_scores, \
    write_segmentation_report
from training.common.config import load_config
from training.evaluation.validate import link_holdout


def common_holdout(runs: list[Path]) -> Path:
    """Return the first run after checking that every run held out exactly the same pairs."""
    names = {run: (Path(run) / 'val_names.txt').read_text().split() for run in runs}
    first = runs[0]
    for run, held in names.items():
        if sorted(held) != sorted(names[first]):
            raise ValueError(f'{run} held out other pairs than {first}: the models cannot be compared on them')
    return first


def own_rows(table, stems: set[str], stem: str):
    """
    Keep what a comparison says about one model: in every mapping keyed by compared models, its entry only.

    Why: a card describes its model. The whole table (every model, the baselines) lives once in the
    comparison folder the card points to; copied into every card it made each card ~50 KB of the others.
    """
    if not isinstance(table, dict):
        return table
    if stems & set(table):
        return {stem: own_rows(table[stem], stems, stem)} if stem in table else {}
    return {key: own_rows(value, stems, stem) for key, value in table.items()}


def add_to_cards(models: list[Path], comparison: dict, source: Path, key: str = 'comparison') -> None:
    """
    Put each model's own rows of the comparison under provenance[key] in its uint8 and float cards.

    The entry names the full table (`source`, relative to the card) and keeps the command that made it;
    the graphs' sha256 are untouched.
    """
    stems = {model.stem for model in models}
    for model in models:
        for path in (model, model.with_name(model.stem + '_float.onnx')):
            card_file = card_path_for(path)
            if card_file.is_file():
                card = json.loads(card_file.read_text())
                see = os.path.relpath(Path(source).resolve(), card_file.parent.resolve())
                card['provenance'][key] = {'see': see, **own_rows(comparison, stems, model.stem)}
                card_file.write_text(json.dumps(card, indent=2) + '\n')


def fuse_each(models: list[Path], ir_dir: Path, vis_dir: Path, work: Path, threads: int,
              progress: bool = True) -> dict[Path, FuseReport]:
    """Fuse the pairs with every model through the runtime pipeline into work/<model stem>; each model's report."""
    reports = {}
    for model in models:
        pipeline = FusionPipeline.from_model(model, threads=threads)
        try:
            reports[model] = fuse_folders(pipeline, ir_dir, vis_dir, work / model.stem, progress=progress)
        finally:
            pipeline.close()
    return reports


def metric_means(summary: dict) -> dict[str, dict[str, Optional[float]]]:
    """Reduce an evaluate_folders summary to {method: {metric: mean}}, the form cards and comparisons keep."""
    return {method: {metric: s['mean'] for metric, s in scores.items()} for method, scores in summary.items()}


BAR_METRICS = ('EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf')


def relative_scores(means: dict[str, dict[str, Optional[float]]], reference: str,
                    metrics: tuple[str, ...] = BAR_METRICS) -> dict[str, dict]:
    """
    Each method's metric means as fractions of the reference method's, with their mean and lowest.

    Why: a new method is judged against the shipped one by the mean fraction over metrics where
    higher is better and by its weakest metric (issue 9: mean >= 0.95, none below 0.85); computing
    it here keeps those numbers reproducible from the comparison instead of from a hand calculation.
    """
    if reference not in means:
        raise ValueError(f'reference method {reference!r} is not among the compared methods: {sorted(means)}')
    base = means[reference]
    relative = {}
    for method, scores in means.items():
        ratios = {m: scores[m] / base[m] for m in metrics
                  if scores.get(m) is not None and base.get(m) not in (None, 0)}
        lowest = min(ratios, key=ratios.get) if ratios else None
        relative[method] = {'ratios': ratios, 'mean': sum(ratios.values()) / len(ratios) if ratios else None,
                            'lowest': lowest}
    return relative


def relative_markdown(relative: dict[str, dict], reference: str, mean_bar: float = 0.95, floor: float = 0.85) -> str:
    """Format relative_scores as a markdown table with a column saying whether each method meets the bar."""
    metrics = next(iter(relative.values()))['ratios'].keys()
    lines = [f'Metric means as fractions of `{reference}`; bar: mean >= {mean_bar}, every metric >= {floor}', '',
             '| method | ' + ' | '.join(metrics) + ' | mean | lowest | meets the bar |',
             '|---|' + '---:|' * (len(metrics) + 2) + '---|']
    for method, row in relative.items():
        ratios = row['ratios']
        meets = row['mean'] is not None and row['mean'] >= mean_bar and min(ratios.values()) >= floor
        mean = '-' if row['mean'] is None else f"{row['mean']:.3f}"
        lines.append(f'| {method} | ' + ' | '.join(f'{ratios[m]:.3f}' if m in ratios else '-' for m in metrics)
                     + f" | {mean} | {row['lowest'] or '-'} | {'yes' if meets else 'no'} |")
    return '\n'.join(lines) + '\n'


def speed_rows(timings: dict, models: list[Path], size: str = '640x480', threads: int = 2) -> dict:
    """
    Each model's model-only ms p50 and node fused frames/s at `size` and `threads`, from a benchmarks/cpu.py JSON.

    Why from the benchmark and not timed here: timings need a quiet machine, the metrics do not; reading the
    sweep keeps one measurement behind every speed the project reports. Models the sweep lacks map to None.
    """
    found = {(r['file'], r['size'], r['threads']): r for r in timings.get('runs', [])}
    rows = {}
    for model in models:
        run = found.get((model.name, size, threads))
        rows[model.stem] = None if run is None else {
            'model_only_ms_p50': run['model_only']['ms']['p50'],
            'node_fused_per_s': run['node']['fused_per_s'] if 'node' in run else None}
    return rows


def speed_markdown(rows: dict, size: str, threads: int, source: str) -> str:
    """Format speed_rows as a markdown table that names the JSON it came from."""
    lines = [f'ONNX Runtime, {size}, {threads} threads (from `{source}`)', '',
             '| model | model-only ms/frame (p50) | node fused frames/s |', '|---|---:|---:|']
    for name, row in rows.items():
        if row is None:
            lines.append(f'| {name} | not measured | not measured |')
        else:
            node = '-' if row['node_fused_per_s'] is None else f"{row['node_fused_per_s']:.1f}"
            lines.append(f"| {name} | {row['model_only_ms_p50']:.1f} | {node} |")
    return '\n'.join(lines) + '\n'


def grid_scenes(names: list[str], per_kind: int = 2) -> list[str]:
    """Pick the first `per_kind` day (MSRS stem ending in D) and night (N) scenes, in name order."""
    ordered = sorted(names)
    return [n for n in ordered if n.endswith('D')][:per_kind] + [n for n in ordered if n.endswith('N')][:per_kind]


def save_grid(pairs: Path, fused: dict[str, Path], path: Path) -> list[str]:
    """Save IR, visible and every method's result side by side for 2 day and 2 night held-out scenes."""
    ir, vis = list_images(pairs / 'ir'), list_images(pairs / 'vi')
    outputs = {m: list_images(folder) for m, folder in fused.items()}
    scenes = grid_scenes(sorted(vis))
    colour = cv2.IMREAD_COLOR
    rows = [(s, [read_image(ir[s], cv2.IMREAD_GRAYSCALE), read_image(vis[s], colour)]
             + [read_image(outputs[m][s], colour) for m in fused]) for s in scenes]
    image_grid(rows, ['infrared', 'visible', *fused], path)
    return scenes


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', required=True, type=Path)
    parser.add_argument('--runs', nargs='+', required=True, type=Path, help='training runs (their val_names.txt)')
    parser.add_argument('--config', required=True, type=Path, help='config naming the held-out source and its masks')
    parser.add_argument('--segmenter', type=Path, help="segmenter graph (card graph 'segment')")
    parser.add_argument('--out', type=Path, default=Path('models/comparison'))
    parser.add_argument('--work', type=Path, default=Path('runs/comparison'),
                        help='where the held-out pairs are linked and fused (large; not committed)')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--timings', type=Path, help='benchmarks/cpu.py JSON: ms per 640x480 frame, 2 threads')
    parser.add_argument('--reference', help='model stem the others are measured against in relative.md '
                                            '(default: the first of --models)')
    args = parser.parse_args(argv)
    reference = args.reference or args.models[0].stem
    if reference not in {m.stem for m in args.models}:
        parser.error(f'--reference {reference} is not the stem of one of --models')
    run = common_holdout(args.runs)
    work = args.work
    pairs = link_holdout(run, args.config, work / 'pairs')
    fused = {}
    for model, report in fuse_each(args.models, pairs / 'ir', pairs / 'vi', work, args.threads).items():
        print(f'{model.stem}: fused {len(report.fused)} pairs in {report.seconds:.1f} s', flush=True)
        fused[model.stem] = work / model.stem
    summary = evaluate_folders(fused, pairs / 'ir', pairs / 'vi', args.out, baselines=True)
    command = 'python -m training.evaluation.compare ' + ' '.join(sys.argv[1:] if argv is None else argv)
    comparison = {'command': command,
                  'pairs': len(list((pairs / 'vi').iterdir())), 'holdout_of': str(run),
                  'metrics_mean': metric_means(summary)}
    comparison['relative'] = {'reference': reference,
                              'methods': relative_scores(comparison['metrics_mean'], reference)}
    (args.out / 'relative.md').write_text(relative_markdown(comparison['relative']['methods'], reference))
    config = load_config(args.config)
    source = next(s for s in config.sources if s.name == config.val_source)
    if args.segmenter:
        scores = segmentation_scores(SegmenterRunner(args.segmenter, args.threads),
                                     {'visible': pairs / 'vi', 'infrared': pairs / 'ir', **fused},
                                     Path(source.masks), source.mask_format)
        write_segmentation_report(scores, args.out, args.segmenter, Path(source.masks))
        comparison['segmentation'] = {'segmenter': args.segmenter.name, 'masks': source.masks, 'scores': scores}
        print(segmentation_markdown(scores))
    if source.masks and source.mask_format == 'yolo_boxes':
        rows = target_contrast_rows(fused, pairs / 'ir', pairs / 'vi', Path(source.masks), baselines=True)
        contrast = write_report(rows, args.out, Path(source.masks))
        comparison['target_contrast'] = {'boxes': source.masks, 'summary': contrast}
        print(target_markdown(comparison['target_contrast']['summary']))
    if args.timings:
        speed = speed_rows(json.loads(args.timings.read_text()), args.models)
        comparison['speed_640x480_2_threads'] = {'source': str(args.timings), 'models': speed}
        (args.out / 'speed.md').write_text(speed_markdown(speed, '640x480', 2, str(args.timings)))
        print((args.out / 'speed.md').read_text())
    comparison['grid'] = {'file': 'grid.png', 'scenes': save_grid(pairs, fused, args.out / 'grid.png')}
    (args.out / 'comparison.json').write_text(json.dumps(comparison, indent=2) + '\n')
    add_to_cards(args.models, comparison, args.out / 'comparison.json')
    print((args.out / 'summary.md').read_text())
    print((args.out / 'relative.md').read_text())


if __name__ == '__main__':
    main()
