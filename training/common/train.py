"""
Train a fusion network from a YAML config.

    python -m training.common.train --config training/configs/seafusion.yaml [--resume] [key=value ...]
    torchrun --nproc_per_node 2 -m training.common.train --config ...      # DDP (nccl on GPU, gloo on CPU)

Writes into ``out_dir``: ``last.pt`` (resumable), ``best.pt`` (best validation
loss), ``train_log.csv``, ``val_log.csv`` and ``val_names.txt`` (the held-out
pairs, so evaluation never touches training images).
"""

import csv
import math
import os
from pathlib import Path
import time
from typing import Optional

import numpy as np
import torch
from torch import nn
import torch.distributed as dist
from tqdm import tqdm

from fusion_ros.core.color import bgr_to_ycrcb, to_uint8, to_unit, ycrcb_to_bgr
from fusion_ros.evaluation import metrics
from fusion_ros.networks.registry import build_model
from training.common.checkpoint import load_checkpoint, save_checkpoint
from training.common.config import config_to_dict, parse_command_line, TrainConfig
from training.common.data import CropSampler, IGNORE, Pair, load_sources, split_holdout
from training.common.objectives import Objective, fused_luma, objective_for


def cosine_lr(step: int, total: int, lr: float, min_lr: float) -> float:
    """Cosine decay from lr to min_lr over total steps."""
    progress = min(step / max(total, 1), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def validate(model: nn.Module, objective: Objective, pairs: list[Pair], config: TrainConfig) -> dict[str, float]:
    """Training loss and fusion metrics of full-size held-out pairs."""
    model.eval()
    step_module = objective.train_module(model)
    rows = []
    with torch.no_grad():
        for p in pairs:
            vis = torch.from_numpy(p.vis_y)[None, None]
            ir = torch.from_numpy(p.ir)[None, None]
            mask = torch.from_numpy(p.mask if p.mask is not None else np.full(p.ir.shape, IGNORE, np.uint8))[None]
            loss, parts = objective.loss(step_module(vis, ir), vis, ir, mask, config)
            y = fused_luma(model, vis, ir)
            _, cr, cb = bgr_to_ycrcb(to_unit(p.vis_bgr))
            fused = metrics.as_gray(to_uint8(ycrcb_to_bgr(y[0, 0].numpy(), cr, cb)))
            scores = metrics.compute_all(fused, metrics.as_gray(to_uint8(p.ir)), metrics.as_gray(p.vis_bgr))
            rows.append({'val_loss': loss.item(), **parts, **scores})
    model.train()
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def append_csv(path: Path, row: dict) -> None:
    """
    Append one row, writing the header when the file is new.

    A run resumed by newer code may log more columns than the file has: the file is then rewritten
    with the union of both headers (old rows get empty cells), so no value lands under another's name.
    """
    header = list(row)
    if path.exists():
        with path.open(newline='') as handle:
            reader = csv.DictReader(handle)
            old, rows = list(reader.fieldnames or []), list(reader)
        header = old + [k for k in header if k not in old]
        if header != old:
            with path.open('w', newline='') as handle:
                writer = csv.DictWriter(handle, fieldnames=header)
                writer.writeheader()
                writer.writerows(rows)
    with path.open('a', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        if handle.tell() == 0:
            writer.writeheader()
        writer.writerow(row)


def setup_distributed() -> tuple[int, int]:
    """Join the torchrun process group if launched by torchrun; returns (rank, world_size)."""
    if 'WORLD_SIZE' not in os.environ or int(os.environ['WORLD_SIZE']) == 1:
        return 0, 1
    dist.init_process_group(backend='nccl' if torch.cuda.is_available() else 'gloo')
    return dist.get_rank(), dist.get_world_size()


def train(config: TrainConfig, resume: bool = False, config_path: Optional[str] = None) -> Path:
    """Run (or continue) training; returns the path of the last checkpoint."""
    rank, world = setup_distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}' if torch.cuda.is_available() else 'cpu')
    out = Path(config.out_dir)
    last = out / 'last.pt'
    torch.manual_seed(config.seed)
    model = build_model(config.method).to(device)
    if config.init_from and not (resume and last.exists()):
        model.load_state_dict(load_checkpoint(config.init_from)['model'])
    objective = objective_for(config)
    step_module = objective.train_module(model)          # may freeze parts of the model
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    pairs = load_sources(config.sources)
    train_pairs, val_pairs = split_holdout(pairs, config.val_source, config.val_count, config.seed)
    sampler = CropSampler(train_pairs, config.crop, config.seed + 1000 * rank, config.target_crops)
    step, best = 0, float('inf')
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        if ckpt['config']['method'] != config.method:
            raise ValueError(f'{last} was trained as {ckpt["config"]["method"]}, config says {config.method}')
        model.load_state_dict(ckpt['model'])
        optimizer.load_state_dict(ckpt['optimizer'])
        step, best = ckpt['step'], ckpt['best_val_loss']
        sampler.rng.bit_generator.state = ckpt['sampler_rng'][rank] if rank < len(ckpt['sampler_rng']) \
            else sampler.rng.bit_generator.state
        torch.set_rng_state(ckpt['torch_rng'])
    net = nn.parallel.DistributedDataParallel(step_module) if world > 1 else step_module
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / 'val_names.txt').write_text(''.join(f'{p.name}\n' for p in val_pairs))
        print(f'{len(train_pairs)} training pairs, {len(val_pairs)} held out from {config.val_source}; '
              f'{sum(p.numel() for p in model.parameters()):,} parameters; start at step {step}', flush=True)

    def checkpoint_state() -> dict:
        states = [sampler.rng.bit_generator.state]
        if world > 1:
            states = [None] * world
            dist.all_gather_object(states, sampler.rng.bit_generator.state)
        return {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step,
                'best_val_loss': best, 'config': config_to_dict(config), 'config_path': config_path,
                'sampler_rng': states, 'torch_rng': torch.get_rng_state()}

    bar = tqdm(total=config.max_steps, initial=step, disable=rank != 0, desc=config.method, dynamic_ncols=True)
    started = time.time()
    while step < config.max_steps:
        for group in optimizer.param_groups:
            group['lr'] = cosine_lr(step, config.max_steps, config.lr, config.min_lr)
        vis, ir, masks = (torch.from_numpy(a).to(device) for a in sampler.batch(config.batch_size))
        loss, parts = objective.loss(net(vis, ir), vis, ir, masks, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        if rank == 0 and step % config.log_every == 0:
            bar.set_postfix(loss=f'{loss.item():.4f}')
            append_csv(out / 'train_log.csv', {'step': step, 'loss': loss.item(), **parts,
                                               'lr': optimizer.param_groups[0]['lr'],
                                               'seconds': round(time.time() - started, 1)})
        if step % config.val_every == 0 or step == config.max_steps:
            improved, result = False, {}
            if rank == 0:
                result = validate(model, objective, val_pairs[:config.val_eval_count], config)
                append_csv(out / 'val_log.csv', {'step': step, **result})
                improved = result['val_loss'] < best
                best = min(best, result['val_loss'])
                tqdm.write(f'step {step}: ' + ', '.join(f'{k} {v:.4g}' for k, v in result.items()))
            if world > 1:   # every rank must take part in checkpoint_state's gather
                flags = torch.tensor([best, float(improved)], dtype=torch.float64)
                dist.broadcast(flags, 0)
                best, improved = float(flags[0]), bool(flags[1])
            if improved:
                state = checkpoint_state()
                if rank == 0:
                    save_checkpoint(out / 'best.pt', {**state, 'val': result})
        if step % config.ckpt_every == 0 or step == config.max_steps:
            state = checkpoint_state()
            if rank == 0:
                save_checkpoint(last, state)
    bar.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return last


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    config, args = parse_command_line(__doc__, argv)
    train(config, resume=args.resume, config_path=args.config)


if __name__ == '__main__':
    main()
