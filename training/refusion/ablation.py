"""
Which ReFusion training lead makes P's maps informative and stops F from learning the blend.

    python -m training.refusion.ablation --config training/configs/refusion.yaml \
        --init models/refusion_run/last.pt --steps 100 --eval-pairs 12 --out runs/refusion_ablation [--rows NAME ...]
    python -m training.refusion.ablation --report --out runs/refusion_ablation

Every row starts F and R from the same checkpoint and P afresh (its last conv is zero, so its maps
start flat), trains the same number of steps with one lead of methods.md switched on (or all of
them), then scores the same held-out pairs: the spatial spread of P's IR weight maps, F's mean
distance from the per-pixel blend of P's own intensity weights (grey levels), and the 8 metrics as
fractions of the reference model (the shipped SeAFusion) on those pairs. The row 'start' is the
checkpoint itself before any step. A finished row writes ``row.json`` and is skipped when the
command is run again; an unfinished one resumes from its ``last.pt``, so rows can be split across
processes (``--rows``) and sessions. ``--report`` writes ``ablation.md``, ``ablation.json`` and
``ablation.png`` from the finished rows.
"""

import argparse
import csv
import json
from pathlib import Path
from typing import Optional

import matplotlib
import torch

from fusion_ros.networks.registry import build_model
from training.common.checkpoint import load_checkpoint
from training.evaluation.compare import BAR_METRICS, relative_scores
from training.common.config import load_config, TrainConfig
from training.common.data import load_sources, split_holdout
from training.common.objectives import Objective
from training.common.run_log import run_summary
from training.refusion.train import MetaTrainer
from training.common.train import validate

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

LEADS = {
    'baseline': {},
    'restormer_p': {'proposal': 'restormer'},
    'maxnorm_outer': {'outer_step': 'maxnorm'},
    'sgd_inner': {'inner_step': 'sgd'},
    'phased': {'meta_phase': 25},
    'swap_sources': {'swap_sources': True, 'batch_size': 2},
    'grad_ramp': {'grad_ramp': True},
    'patches_128': {'crop': 128, 'batch_size': 1},
    'p_lr_x10': {'proposal_lr': 1e-3},
    'contrast_p': {'proposal': 'contrast'},
}
"""
One lead each (methods.md, "Leads"); batch sizes keep the pixels per step of the baseline (4 x 64^2).

Two rows are ours: p_lr_x10 (P's Adam step 10x F's), and contrast_p, a diagnostic P that is
informative from the start (meta.ContrastProposal): what F does when P is not flat.
"""

LEADS['all_leads'] = {k: v for name, lead in LEADS.items() if name not in ('baseline', 'p_lr_x10', 'contrast_p')
                      for k, v in lead.items()} | {'batch_size': 1}
LEADS |= {'p_random_init': {'proposal_init': 'random'},
          'p_random_init_lr_x10': {'proposal_init': 'random', 'proposal_lr': 1e-3},
          'restormer_random_init': {'proposal': 'restormer', 'proposal_init': 'random'}}
"""
Added after the first table: P's last conv at PyTorch's default initialisation instead of zero (flat
maps), alone, with P's 10x step, and in TDFusion's P as its code leaves it.
"""
ROWS = ('start', *LEADS)


def row_config(base: TrainConfig, name: str, args: argparse.Namespace) -> TrainConfig:
    """Return the base config with the ablation's fixed budget and the row's lead applied."""
    fixed = {'max_steps': args.steps, 'lr': args.lr, 'min_lr': args.lr, 'meta_every': 1, 'val_every': args.steps,
             'ckpt_every': 25, 'log_every': 5, 'val_eval_count': args.eval_pairs, 'init_from': args.init,
             'threads': args.threads, 'out_dir': str(Path(args.out) / name)}
    return TrainConfig(**{**base.__dict__, **fixed, **LEADS.get(name, {})})


def reference_scores(config: TrainConfig, weights: Path) -> dict[str, float]:
    """Metrics of the reference model (anything load_checkpoint reads: 'method' and 'model') on the rows' pairs."""
    state = load_checkpoint(weights)
    model = build_model(state['method'])
    model.load_state_dict(state['model'])
    _, val_pairs = split_holdout(load_sources(config.sources), config.val_source, config.val_count, config.seed)
    no_loss = Objective(lambda m: m, lambda fused, *_: (fused.new_zeros(()), {}))
    return validate(model, no_loss, val_pairs[:config.val_eval_count], config)


def run_row(base: TrainConfig, name: str, args: argparse.Namespace) -> dict:
    """Train one row (resuming if it was cut) and score it; 'start' only scores the checkpoint."""
    config = row_config(base, name, args)
    out = Path(config.out_dir)
    trainer = MetaTrainer(config, args.config)
    if (out / 'last.pt').exists():
        trainer.restore(load_checkpoint(out / 'last.pt'))
    if name == 'start':
        return {'row': name, 'lead': {}, 'steps': 0, 'train_seconds': 0.0, 'scores': trainer.validate()}
    trainer.run()
    logged = _read_csv(out / 'val_log.csv')
    final = logged[-1] if logged and int(logged[-1]['step']) == config.max_steps else None
    scores = {k: float(v) for k, v in final.items() if k != 'step'} if final else trainer.validate()
    return {'row': name, 'lead': LEADS[name], 'steps': trainer.step,
            'train_seconds': (run_summary(out) or {}).get('wall_s', 0.0), 'scores': scores}


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a training log ([] when it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline='') as handle:
        return list(csv.DictReader(handle))


def report(out: Path) -> str:
    """Table, JSON and plot of the finished rows; returns the markdown."""
    reference = json.loads((out / 'reference.json').read_text())
    rows = [json.loads((out / name / 'row.json').read_text()) for name in ROWS if (out / name / 'row.json').exists()]
    lines = ['| row | lead | steps | train s | P spread int / grad | F from blend (grey) | '
             + ' | '.join(BAR_METRICS) + ' | mean | min |',
             '|' + '---|' * (8 + len(BAR_METRICS))]
    relatives = relative_scores({'reference': reference['scores'], **{r['row']: r['scores'] for r in rows}},
                                'reference')
    for r in rows:
        s, rel = r['scores'], relatives[r['row']]['ratios']
        r['relative'] = rel
        r['relative_mean'], r['relative_min'] = relatives[r['row']]['mean'], min(rel.values())
        lead = ', '.join(f'{k}={v}' for k, v in r['lead'].items()) or '-'
        lines.append(f'| {r["row"]} | {lead} | {r["steps"]} | {r["train_seconds"]:.0f} | '
                     f'{s["std_w_int"]:.4f} / {s["std_w_grad"]:.4f} | {s["blend_distance"]:.2f} | '
                     + ' | '.join(f'{rel[k]:.3f}' for k in BAR_METRICS)
                     + f' | {r["relative_mean"]:.3f} | {r["relative_min"]:.3f} |')
    table = '\n'.join(lines) + '\n'
    (out / 'ablation.md').write_text(
        f'Metrics relative to {reference["weights"]} on the same {reference["pairs"]} held-out pairs.\n\n{table}')
    (out / 'ablation.json').write_text(json.dumps({'reference': reference, 'rows': rows}, indent=1))
    plot(rows, out / 'ablation.png')
    return table


def plot(rows: list[dict], path: Path) -> None:
    """P's spread, F's distance from the blend and the relative mean per row, side by side."""
    names = [r['row'] for r in rows]
    panels = (('P spread (IR intensity map)', [r['scores']['std_w_int'] for r in rows]),
              ('F distance from P blend (grey)', [r['scores']['blend_distance'] for r in rows]),
              ('8-metric mean / SeAFusion', [r['relative_mean'] for r in rows]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (title, values) in zip(axes, panels):
        ax.barh(names, values, color='tab:blue')
        ax.set_title(title)
        ax.invert_yaxis()
    axes[0].set_xscale('symlog', linthresh=1e-4)   # the learned P's spreads are 1e-4..1e-3, the diagnostic's 0.25
    axes[2].axvline(0.97, color='tab:red', linestyle='--', label="issue's bar 0.97")
    axes[2].legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='training/configs/refusion.yaml')
    parser.add_argument('--init', default='models/refusion_run/last.pt', help='F and R start from this checkpoint')
    parser.add_argument('--reference', default='models/seafusion.onnx',
                        help='model the metrics are relative to: an exported .onnx with its card, or a checkpoint')
    parser.add_argument('--steps', type=int, default=100, help='training steps per row (the fixed budget)')
    parser.add_argument('--lr', type=float, default=1e-4, help='constant learning rate of every row (methods.md)')
    parser.add_argument('--eval-pairs', type=int, default=12, help='held-out pairs scored per row')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--rows', nargs='+', choices=ROWS, default=list(ROWS))
    parser.add_argument('--out', default='runs/refusion_ablation')
    parser.add_argument('--report', action='store_true', help='only write the table and plot of finished rows')
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.report:
        torch.set_num_threads(args.threads)
        base = load_config(Path(args.config))
        out.mkdir(parents=True, exist_ok=True)
        if not (out / 'reference.json').exists():
            scores = reference_scores(row_config(base, 'start', args), Path(args.reference))
            (out / 'reference.json').write_text(json.dumps(
                {'weights': args.reference, 'pairs': args.eval_pairs, 'scores': scores}, indent=1))
        for name in args.rows:
            if not (out / name / 'row.json').exists():
                result = run_row(base, name, args)
                (out / name).mkdir(parents=True, exist_ok=True)
                (out / name / 'row.json').write_text(json.dumps(result, indent=1))
                print(f'{name}: {json.dumps(result["scores"])}', flush=True)
    print(report(out))


if __name__ == '__main__':
    main()
