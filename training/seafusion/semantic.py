"""
SeAFusion joint adaptive training: fusion net and segmenter trained in turn (methods.md).

    python -m training.seafusion.semantic --config training/configs/seafusion_seg.yaml [--resume] [key=value ...]

For stage i = 0 .. stages-1:
  1. fusion net: ``fusion_steps`` Adam steps of L_content + i * semantic_weight * L_sem, where
     L_sem is the OHEM cross-entropy of the frozen segmenter on the fused luminance. Stage 0
     is content-only; with ``init_from`` set, that checkpoint *is* stage 0's fusion net;
  2. segmenter: ``seg_steps`` SGD steps (momentum 0.9, wd 5e-4, linear warm-up then poly decay,
     heads at 10x lr) on fused crops of the pairs that have masks, fused on the fly by the
     current (frozen) fusion net instead of writing a fused copy of the training set.

Masks are box-derived (datasets/README.md) unless the config points a source at real
label PNGs. Single process (the segmenter stage is short; DDP is in training.common.train).
Writes ``last.pt`` (resumable at any step of any phase), ``train_log.csv`` and
``val_log.csv`` (per stage: fusion metrics and segmenter mIoU on held-out pairs).
"""

from pathlib import Path
import time
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fusion_ros.evaluation.mask_io import BOX_CLASSES
from fusion_ros.evaluation.segmentation_metrics import confusion, iou_per_class, mean_iou
from fusion_ros.networks.registry import build_model
from fusion_ros.networks.segmenter import Segmenter
from training.common.checkpoint import load_checkpoint, run_resumable, save_checkpoint
from training.common.config import config_to_dict, TrainConfig
from training.common.data import CropSampler, IGNORE, Pair, load_sources, split_holdout
from training.common.losses import content_loss, semantic_loss
from training.common.objectives import objective_for
from training.common.train import append_csv, cosine_lr, validate

WARMUP = 50


def seg_lr(step: int, config: TrainConfig) -> float:
    """Linear warm-up over WARMUP steps, then poly(0.9) decay to zero at seg_steps."""
    if step < WARMUP:
        return config.seg_lr * (step + 1) / WARMUP
    return config.seg_lr * (1 - (step - WARMUP) / max(config.seg_steps - WARMUP, 1)) ** 0.9


def seg_optimizer(segmenter: Segmenter, config: TrainConfig) -> torch.optim.SGD:
    """SGD with the two heads in their own group at 10x lr (BiSeNet practice)."""
    heads = [p for n, p in segmenter.named_parameters() if 'head' in n]
    body = [p for n, p in segmenter.named_parameters() if 'head' not in n]
    return torch.optim.SGD([{'params': body, 'scale': 1.0}, {'params': heads, 'scale': 10.0}],
                           lr=config.seg_lr, momentum=0.9, weight_decay=5e-4)


def segment_miou(fusion: nn.Module, segmenter: Segmenter, pairs: list[Pair]) -> dict[str, float]:
    """Score the segmenter (mIoU) on visible Y, IR and fused Y of full-size held-out pairs with masks."""
    fusion.eval()
    segmenter.eval()
    matrices = {k: np.zeros((segmenter.classes,) * 2, np.int64) for k in ('visible', 'infrared', 'fused')}
    with torch.no_grad():
        for p in (p for p in pairs if p.mask is not None):
            vis, ir = torch.from_numpy(p.vis_y)[None, None], torch.from_numpy(p.ir)[None, None]
            for key, y in (('visible', vis), ('infrared', ir), ('fused', fusion(vis, ir))):
                pred = segmenter(y)[0].argmax(1)[0].numpy()
                matrices[key] += confusion(pred, p.mask, segmenter.classes, IGNORE)
    fusion.train()
    segmenter.train()
    result = {f'miou_{k}': mean_iou(m) for k, m in matrices.items()}
    result.update({f'iou_fused_{name}': float(v) for name, v in zip(BOX_CLASSES, iou_per_class(matrices['fused']))})
    return result


class JointTrainer:
    """Holds both networks, their optimisers and samplers, and the (stage, phase, step) position."""

    def __init__(self, config: TrainConfig, config_path: Optional[str] = None):
        self.config, self.config_path = config, config_path
        torch.manual_seed(config.seed)
        self.fusion = build_model(config.method)
        self.segmenter = Segmenter(len(BOX_CLASSES))
        self.fusion_opt = torch.optim.Adam(self.fusion.parameters(), lr=config.lr)
        self.seg_opt = seg_optimizer(self.segmenter, config)
        pairs = load_sources(config.sources)
        self.train_pairs, self.val_pairs = split_holdout(pairs, config.val_source, config.val_count, config.seed)
        masked = [p for p in self.train_pairs if p.mask is not None]
        if not masked:
            raise ValueError('joint training needs masks: give at least one source a masks folder')
        self.fusion_sampler = CropSampler(self.train_pairs, config.crop, config.seed)
        self.seg_sampler = CropSampler(masked, config.crop, config.seed + 1)
        self.stage, self.phase, self.step = 0, 'fusion', 0
        if config.init_from:
            self.fusion.load_state_dict(load_checkpoint(config.init_from)['model'])
            self.phase = 'segmenter'     # the given checkpoint is stage 0's content-only fusion net
        self.out = Path(config.out_dir)
        self.started = time.time()

    def state(self) -> dict:
        """Everything needed to resume at the current step."""
        return {'model': self.fusion.state_dict(), 'segmenter': self.segmenter.state_dict(),
                'fusion_opt': self.fusion_opt.state_dict(), 'seg_opt': self.seg_opt.state_dict(),
                'stage': self.stage, 'phase': self.phase, 'phase_step': self.step,
                'step': self._total_steps(), 'config': config_to_dict(self.config), 'config_path': self.config_path,
                'samplers': [self.fusion_sampler.rng.bit_generator.state, self.seg_sampler.rng.bit_generator.state],
                'torch_rng': torch.get_rng_state(), 'classes': list(BOX_CLASSES)}

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint written by state()."""
        self.fusion.load_state_dict(ckpt['model'])
        self.segmenter.load_state_dict(ckpt['segmenter'])
        self.fusion_opt.load_state_dict(ckpt['fusion_opt'])
        self.seg_opt.load_state_dict(ckpt['seg_opt'])
        self.stage, self.phase, self.step = ckpt['stage'], ckpt['phase'], ckpt['phase_step']
        self.fusion_sampler.rng.bit_generator.state, self.seg_sampler.rng.bit_generator.state = ckpt['samplers']
        torch.set_rng_state(ckpt['torch_rng'])

    def _total_steps(self) -> int:
        """Fusion + segmenter steps run so far, for logs (stage 0's fusion phase is skipped with init_from)."""
        c = self.config
        position = self.stage * (c.fusion_steps + c.seg_steps) + (c.fusion_steps if self.phase == 'segmenter' else 0)
        return position + self.step - (c.fusion_steps if c.init_from else 0)

    def _semantic_loss(self, fused: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """L_sem of the current segmenter with the config's loss kind and class weights."""
        c = self.config
        weight = torch.tensor(c.seg_class_weights, dtype=torch.float32) if c.seg_class_weights else None
        return semantic_loss(self.segmenter, fused, masks, weight, c.seg_ohem)

    def fusion_step(self) -> dict[str, float]:
        """One fusion-net step with the current stage's semantic weight; the segmenter is frozen."""
        c = self.config
        for group in self.fusion_opt.param_groups:
            group['lr'] = cosine_lr(self.step, c.fusion_steps, c.lr, c.min_lr)
        vis, ir, masks = (torch.from_numpy(a) for a in self.fusion_sampler.batch(c.batch_size))
        fused = self.fusion(vis, ir)
        loss, parts = content_loss(fused, vis, ir, c.texture_weight)
        weight = self.stage * c.semantic_weight
        if weight:
            l_sem = self._semantic_loss(fused, masks)
            loss = loss + weight * l_sem
            parts['l_sem'] = float(l_sem.detach())
        self.fusion_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.fusion_opt.step()
        return {'loss': float(loss.detach()), **parts}

    def seg_step(self) -> dict[str, float]:
        """One segmenter step on crops fused by the frozen fusion net."""
        for group in self.seg_opt.param_groups:
            group['lr'] = seg_lr(self.step, self.config) * group['scale']
        vis, ir, masks = (torch.from_numpy(a) for a in self.seg_sampler.batch(self.config.seg_batch_size))
        with torch.no_grad():
            fused = self.fusion(vis, ir)
        loss = self._semantic_loss(fused, masks)
        self.seg_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.seg_opt.step()
        return {'loss': float(loss.detach())}

    def run(self) -> Path:
        """Train until the last stage's segmenter phase is done; returns last.pt."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / 'val_names.txt').write_text(''.join(f'{p.name}\n' for p in self.val_pairs))
        while self.stage < c.stages:
            length = c.fusion_steps if self.phase == 'fusion' else c.seg_steps
            self._set_frozen()
            bar = tqdm(total=length, initial=self.step, desc=f'stage {self.stage} {self.phase}', dynamic_ncols=True)
            while self.step < length:
                parts = self.fusion_step() if self.phase == 'fusion' else self.seg_step()
                self.step += 1
                bar.update(1)
                if self.step % c.log_every == 0:
                    bar.set_postfix(loss=f'{parts["loss"]:.4f}')
                    append_csv(self.out / 'train_log.csv',
                               {'step': self._total_steps(), 'stage': self.stage, 'phase': self.phase,
                                'loss': parts['loss'], 'l_sem': parts.get('l_sem', ''),
                                'seconds': round(time.time() - self.started, 1)})
                if self.step % c.ckpt_every == 0:
                    save_checkpoint(self.out / 'last.pt', self.state())
            bar.close()
            self._advance()
            save_checkpoint(self.out / 'last.pt', self.state())
        return self.out / 'last.pt'

    def _set_frozen(self) -> None:
        """Only the network of the current phase learns; the frozen segmenter's BatchNorm stays in eval mode."""
        self.segmenter.train(self.phase == 'segmenter')
        for p in self.segmenter.parameters():
            p.requires_grad_(self.phase == 'segmenter')
        for p in self.fusion.parameters():
            p.requires_grad_(self.phase == 'fusion')

    def _advance(self) -> None:
        """After a phase: validate at the end of a stage and move to the next phase."""
        if self.phase == 'fusion':
            self.phase, self.step = 'segmenter', 0
            return
        held = self.val_pairs[:self.config.val_eval_count]
        row = {'stage': self.stage, 'step': self._total_steps(),
               **validate(self.fusion, objective_for(self.config), held, self.config),
               **segment_miou(self.fusion, self.segmenter, held)}
        append_csv(self.out / 'val_log.csv', row)
        tqdm.write(f'stage {self.stage}: ' + ', '.join(f'{k} {v:.4g}' for k, v in row.items()))
        self.stage, self.phase, self.step = self.stage + 1, 'fusion', 0


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    run_resumable(JointTrainer, __doc__, argv)


if __name__ == '__main__':
    main()
