"""
ReFusion training: the fusion module F with a loss learned by meta-learning (training.refusion.meta).

    python -m training.refusion.train --config training/configs/refusion.yaml [--resume] [key=value ...]

Interleaved (``meta_phase: 0``): every step F and the reconstruction module R take one Adam step;
every ``meta_every``-th step the loss proposal module P first takes its meta step (an inner
differentiable step of F, the reconstruction loss of R(F'(x)) back into P). Phased
(``meta_phase: n``): n steps in which only P learns, each from one inner and two outer batches,
then n steps of F and R. Cosine decay from ``lr`` to ``min_lr`` (methods.md suggests a constant
1e-4; the config says what a run used and why). The leads of methods.md are config switches
(``proposal``, ``inner_step``, ``outer_step``, ``meta_phase``, ``swap_sources``, ``grad_ramp``);
``training.refusion.ablation`` measures them. ``init_from`` starts F and R from a checkpoint, P afresh.

Writes into ``out_dir``: ``last.pt`` (resumable: F, P, R, their optimisers, the sampler's and
torch's RNG), ``best.pt`` (lowest held-out reconstruction loss), ``train_log.csv`` (rec_loss,
fusion_loss, r_loss and the spatial std of P's weight maps), ``val_log.csv`` (held-out
reconstruction loss and fusion metrics) and ``val_names.txt``. ``training.deploy.export`` exports F.
"""

from pathlib import Path
import time
from typing import Optional

import torch
from tqdm import tqdm

from fusion_ros.networks.registry import build_model
from training.common.checkpoint import load_checkpoint, run_resumable, save_checkpoint
from training.common.config import config_to_dict, TrainConfig
from training.common.data import CropSampler, load_sources, split_holdout
from training.common.objectives import Objective
from training.refusion.meta import blend_distance, fusion_step, make_proposal, meta_gradient, meta_step, MetaNets, \
    MetaSettings, proposal_step, Reconstruction, reconstruction_loss, swapped, weight_spread
from training.common.train import append_csv, cosine_lr, validate


class MetaTrainer:
    """F, P and R with their optimisers, the crop sampler and the step counter of one run."""

    def __init__(self, config: TrainConfig, config_path: Optional[str] = None):
        if config.meta_every < 1:
            raise ValueError(f'meta_every must be >= 1, got {config.meta_every}')
        self.config, self.config_path = config, config_path
        torch.manual_seed(config.seed)
        fusion, reconstruction = build_model(config.method), Reconstruction()
        proposal = make_proposal(config.proposal, config.proposal_init)
        if config.init_from:
            start = load_checkpoint(config.init_from)
            fusion.load_state_dict(start['model'])
            reconstruction.load_state_dict(start['reconstruction'])
        MetaSettings(inner_step=config.inner_step, outer_step=config.outer_step)   # reject bad names now
        optimizers = (torch.optim.Adam(n.parameters(), lr=config.lr) for n in (fusion, proposal, reconstruction))
        self.nets = MetaNets(fusion, proposal, reconstruction, *optimizers)
        self.last = {'fusion_loss': float('nan'), 'r_loss': float('nan')}
        pairs = load_sources(config.sources)
        self.train_pairs, self.val_pairs = split_holdout(pairs, config.val_source, config.val_count, config.seed)
        self.sampler = CropSampler(self.train_pairs, config.crop, config.seed)
        self.step, self.best = 0, float('inf')
        self.rec_loss = float('nan')      # outer loss of the latest meta step, for the log
        self.out = Path(config.out_dir)

    def state(self) -> dict:
        """Everything needed to resume at the current step; 'model' is F, what training.deploy.export reads."""
        n = self.nets
        return {'model': n.fusion.state_dict(), 'proposal': n.proposal.state_dict(),
                'reconstruction': n.reconstruction.state_dict(), 'fusion_opt': n.fusion_opt.state_dict(),
                'proposal_opt': n.proposal_opt.state_dict(), 'reconstruction_opt': n.reconstruction_opt.state_dict(),
                'step': self.step, 'best_val_loss': self.best, 'rec_loss': self.rec_loss,
                'config': config_to_dict(self.config),
                'config_path': self.config_path,
                'command': f'python -m training.refusion.train --config {self.config_path}',
                'sampler_rng': self.sampler.rng.bit_generator.state, 'torch_rng': torch.get_rng_state()}

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint written by state()."""
        if ckpt['config']['method'] != self.config.method:
            raise ValueError(f'checkpoint was trained as {ckpt["config"]["method"]}, config says {self.config.method}')
        n = self.nets
        for module, key in ((n.fusion, 'model'), (n.proposal, 'proposal'), (n.reconstruction, 'reconstruction'),
                            (n.fusion_opt, 'fusion_opt'), (n.proposal_opt, 'proposal_opt'),
                            (n.reconstruction_opt, 'reconstruction_opt')):
            module.load_state_dict(ckpt[key])
        self.step, self.best, self.rec_loss = ckpt['step'], ckpt['best_val_loss'], ckpt['rec_loss']
        self.sampler.rng.bit_generator.state = ckpt['sampler_rng']
        torch.set_rng_state(ckpt['torch_rng'])

    def settings(self, lr: float) -> MetaSettings:
        """Return the meta step's settings at this step (F's learning rate, the ramped gradient weight)."""
        c = self.config
        ramp = (self.step + 1) / c.max_steps if c.grad_ramp else 1.0
        return MetaSettings(c.inner_lr, c.inner_step, c.outer_step, lr, ramp)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One (vis, ir) batch of crops, doubled with swapped sources when swap_sources is set."""
        vis, ir, _ = (torch.from_numpy(a) for a in self.sampler.batch(self.config.batch_size))
        return swapped(vis, ir) if self.config.swap_sources else (vis, ir)

    def train_step(self) -> dict[str, float]:
        """One step: P's meta step and/or F and R, by the schedule; logs the latest value of each loss."""
        c, n = self.config, self.nets
        lr = cosine_lr(self.step, c.max_steps, c.lr, c.min_lr)
        scale = (c.proposal_lr or c.lr) / c.lr
        for optimizer, factor in ((n.fusion_opt, 1.0), (n.proposal_opt, scale), (n.reconstruction_opt, 1.0)):
            for group in optimizer.param_groups:
                group['lr'] = lr * factor
        settings = self.settings(lr)
        if c.meta_phase:
            if self.step % (2 * c.meta_phase) < c.meta_phase:
                inner, outers = self.batch(), (self.batch(), self.batch())
                results = [meta_gradient(n, inner, outer, settings) for outer in outers]
                proposal_step(n, [sum(g) / len(results) for g in zip(*(r[0] for r in results))], settings)
                self.rec_loss = sum(r[1] for r in results) / len(results)
                with torch.no_grad():
                    spread = weight_spread(n.proposal(inner[1], inner[0]))
                return {'rec_loss': self.rec_loss, **self.last, 'std_w_int': spread[0], 'std_w_grad': spread[1]}
            vis, ir = self.batch()
        else:
            vis, ir = self.batch()
            if self.step % c.meta_every == 0:
                self.rec_loss = meta_step(n, (vis, ir), settings)
        parts = fusion_step(n, vis, ir, settings.grad_weight)
        self.last = {'fusion_loss': parts['fusion_loss'], 'r_loss': parts['r_loss']}
        return {'rec_loss': self.rec_loss, **parts}

    def validate(self) -> dict[str, float]:
        """Held-out reconstruction loss of R, P's spread, F's distance from P's blend, and the fusion metrics."""
        reconstruction, proposal = self.nets.reconstruction.eval(), self.nets.proposal.eval()

        def held_out_loss(fused, vis, ir, masks, config):
            sources, weights = torch.cat([ir, vis], dim=1), proposal(ir, vis)
            spread = weight_spread(weights)
            return reconstruction_loss(reconstruction(fused), sources), {
                'std_w_int': spread[0], 'std_w_grad': spread[1],
                'blend_distance': blend_distance(weights, fused, sources)}

        result = validate(self.nets.fusion, Objective(lambda model: model, held_out_loss),
                          self.val_pairs[:self.config.val_eval_count], self.config)
        reconstruction.train()
        proposal.train()
        return result

    def run(self) -> Path:
        """Train to max_steps; returns last.pt."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / 'val_names.txt').write_text(''.join(f'{p.name}\n' for p in self.val_pairs))
        print(f'{len(self.train_pairs)} training pairs, {len(self.val_pairs)} held out from {c.val_source}; '
              f'{sum(p.numel() for p in self.nets.fusion.parameters()):,} parameters in F; start at step {self.step}',
              flush=True)
        bar = tqdm(total=c.max_steps, initial=self.step, desc=c.method, dynamic_ncols=True)
        started = time.time()
        while self.step < c.max_steps:
            parts = self.train_step()
            self.step += 1
            bar.update(1)
            if self.step % c.log_every == 0:
                bar.set_postfix(rec=f'{parts["r_loss"]:.4f}')
                append_csv(self.out / 'train_log.csv', {'step': self.step, **parts,
                                                        'seconds': round(time.time() - started, 1)})
            if self.step % c.val_every == 0 or self.step == c.max_steps:
                result = self.validate()
                append_csv(self.out / 'val_log.csv', {'step': self.step, **result})
                tqdm.write(f'step {self.step}: ' + ', '.join(f'{k} {v:.4g}' for k, v in result.items()))
                if result['val_loss'] < self.best:
                    self.best = result['val_loss']
                    save_checkpoint(self.out / 'best.pt', {**self.state(), 'val': result})
            if self.step % c.ckpt_every == 0 or self.step == c.max_steps:
                save_checkpoint(self.out / 'last.pt', self.state())
        bar.close()
        return self.out / 'last.pt'


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    run_resumable(MetaTrainer, __doc__, argv)


if __name__ == '__main__':
    main()
