"""
Compare shipped models on the other fusion tasks of ../shared/datasets: medical, multi-exposure, multi-focus.

    python -m training.evaluation.compare_tasks --models models/seafusion.onnx models/sgfusion.onnx \
        models/coconet.onnx models/refusion.onnx --data ../shared/datasets --out models/comparison/other_tasks

Why: SGFusion and ReFusion are general-purpose methods, and users ask whether an infrared/visible model
transfers. Every model here was trained on infrared/visible pairs only; nothing is retrained per task.
Each task feeds its two folders the way the node feeds its cameras: the first folder is the
single-channel (infrared) input, the second the colour (visible) input whose chroma the fused image
keeps, so the colour of PET and SPECT survives. Fused images go to ``--work``; each task is scored
with the metrics of metrics.md beside the pixel max and mean baselines. ``--out`` gets summary.md
(one table per task) and summary.json; each model's card gets an ``other_tasks`` entry with its own
rows and the path of summary.json.
"""

import argparse
from dataclasses import dataclass
import json
from pathlib import Path
import sys
from typing import Optional

from fusion_ros.evaluation.evaluate import evaluate_folders
from fusion_ros.evaluation.metrics import METRIC_NAMES
from training.evaluation.compare import add_to_cards, fuse_each, metric_means


@dataclass(frozen=True)
class Task:
    """A folder of registered pairs: `gray` goes to the infrared input, `colour` to the visible one."""

    name: str
    folder: str
    gray: str
    colour: str


TASKS = (
    Task('mri_ct', 'medical/mri_ct', 'mri', 'ct'),
    Task('mri_pet', 'medical/mri_pet', 'mri', 'pet'),
    Task('mri_spect', 'medical/mri_spect', 'mri', 'spect'),
    Task('multi_exposure', 'multi_exposure', 'under', 'over'),
    Task('multi_focus', 'multi_focus', 'far', 'near'),
)


def task_folders(data: Path, task: Task) -> tuple[Path, Path]:
    """Return the task's (gray, colour) folders, or raise naming the one that is missing."""
    gray, colour = data / task.folder / task.gray, data / task.folder / task.colour
    for folder in (gray, colour):
        if not folder.is_dir():
            raise FileNotFoundError(f'{task.name}: folder {folder} does not exist (is --data the datasets folder?)')
    return gray, colour


def markdown(results: dict) -> str:
    """One metric table per task: models, then the max and mean baselines."""
    lines = []
    for name, task in results.items():
        lines += [f'### {name} ({task["pairs"]} pairs: {task["gray"]} as infrared, {task["colour"]} as visible)', '',
                  '| method | ' + ' | '.join(METRIC_NAMES) + ' |', '|---' + '|---:' * len(METRIC_NAMES) + '|']
        for method, scores in task['metrics_mean'].items():
            cells = ['-' if scores[m] is None else f'{scores[m]:.3f}' for m in METRIC_NAMES]
            lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    return '\n'.join(lines)


def compare_task(models: list[Path], task: Task, data: Path, work: Path, threads: int) -> dict:
    """Fuse the task's pairs with every model and score them; the task's entry of summary.json."""
    gray, colour = task_folders(data, task)
    reports = fuse_each(models, gray, colour, work / task.name, threads, progress=False)
    for model, report in reports.items():
        if report.failed:
            raise ValueError(f'{task.name}: {model.name} failed on {sorted(report.failed)}: {report.failed}')
    fused = {model.stem: work / task.name / model.stem for model in models}
    summary = evaluate_folders(fused, gray, colour, work / task.name / 'report', baselines=True, progress=False)
    return {'folder': task.folder, 'gray': task.gray, 'colour': task.colour, 'pairs': len(reports[models[0]].fused),
            'metrics_mean': metric_means(summary)}


def main(argv: Optional[list[str]] = None) -> dict:
    """Command-line entry point; returns what summary.json holds."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', required=True, type=Path)
    parser.add_argument('--data', type=Path, default=Path('../shared/datasets'), help='the datasets folder')
    parser.add_argument('--tasks', nargs='+', choices=[t.name for t in TASKS], default=[t.name for t in TASKS])
    parser.add_argument('--out', type=Path, default=Path('models/comparison/other_tasks'))
    parser.add_argument('--work', type=Path, default=Path('runs/comparison_tasks'),
                        help='where fused images and per-task reports go (not committed)')
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args(argv)
    tasks = [t for t in TASKS if t.name in args.tasks]
    for task in tasks:                      # fail before hours of fusing, not after
        task_folders(args.data, task)
    results = {}
    for task in tasks:
        results[task.name] = compare_task(args.models, task, args.data, args.work, args.threads)
        print(f'{task.name}: {results[task.name]["pairs"]} pairs scored', flush=True)
    command = 'python -m training.evaluation.compare_tasks ' + ' '.join(sys.argv[1:] if argv is None else argv)
    summary = {'command': command, 'tasks': results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    (args.out / 'summary.md').write_text(markdown(results))
    add_to_cards(args.models, summary, args.out / 'summary.json', key='other_tasks')
    print(markdown(results))
    return summary


if __name__ == '__main__':
    main()
