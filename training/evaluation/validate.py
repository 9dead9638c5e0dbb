"""
Validate an exported model on a training run's held-out pairs, beside the max/mean baselines.

    python -m training.evaluation.validate --run runs/seafusion --model models/seafusion.onnx \
        [--config training/configs/seafusion.yaml] [--out runs/seafusion/validation]

Links the held-out pairs named in ``<run>/val_names.txt`` (from the config's
``val_source``) into ``<out>/pairs``, fuses them with the runtime pipeline
(the same code path as `fusion-ros fuse` and the node) and evaluates them with
`fusion-ros evaluate --baselines`. The resulting ``summary.json`` is what
``training.deploy.export --metrics`` copies into the model card.
"""

import argparse
from pathlib import Path
from typing import Optional

from fusion_ros.cli.fuse import fuse_folders
from fusion_ros.core.imageio import pair_folders
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.evaluation.evaluate import evaluate_folders
from training.common.config import load_config


def link_holdout(run: Path, config_path: Path, out: Path) -> Path:
    """Symlink the run's held-out pairs into out/ir and out/vi; returns out."""
    config = load_config(config_path)
    source = next((s for s in config.sources if s.name == config.val_source), None)
    if source is None:
        raise ValueError(f'val_source {config.val_source!r} is not among the config sources')
    names = set((Path(run) / 'val_names.txt').read_text().split())
    pairs = [p for p in pair_folders(source.ir, source.vis).pairs if p[0].stem in names]
    if len(pairs) != len(names):
        raise FileNotFoundError(f'{len(names) - len(pairs)} held-out pair(s) of {run} not found in {source.ir}')
    for sub, index in (('ir', 0), ('vi', 1)):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for pair in pairs:
            link = out / sub / pair[index].name
            if not link.exists():
                link.symlink_to(Path(pair[index]).resolve())
    return out


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', required=True, type=Path, help='training run folder (has val_names.txt)')
    parser.add_argument('--model', required=True, type=Path, help='exported ONNX model with its card')
    parser.add_argument('--config', type=Path, default=Path('training/configs/seafusion.yaml'))
    parser.add_argument('--out', type=Path, help='output folder (default: <run>/validation)')
    args = parser.parse_args(argv)
    out = args.out or args.run / 'validation'
    pairs = link_holdout(args.run, args.config, out / 'pairs')
    pipeline = FusionPipeline.from_model(args.model)
    report = fuse_folders(pipeline, pairs / 'ir', pairs / 'vi', out / 'fused')
    print(f'fused {len(report.fused)} held-out pairs in {report.seconds:.1f} s; {len(report.failed)} failed')
    evaluate_folders({pipeline.card.method: out / 'fused'}, pairs / 'ir', pairs / 'vi', out, baselines=True)
    print((out / 'summary.md').read_text())


if __name__ == '__main__':
    main()
