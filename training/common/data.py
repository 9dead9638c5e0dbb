"""Paired IR + visible training data: name matching, hold-out split, random crops and flips."""

from dataclasses import dataclass
from pathlib import Path
import random
from typing import Optional

import cv2
import numpy as np

from fusion_ros.core.color import bgr_to_ycrcb, ir_to_unit, to_unit
from fusion_ros.core.imageio import pair_folders, read_image, read_ir, read_visible
from fusion_ros.evaluation.mask_io import IGNORE, mask_path, read_mask
from training.common.config import DataSource


@dataclass
class Pair:
    """One registered pair as float32 [0, 1] planes of equal size; the visible image keeps colour."""

    name: str
    source: str
    ir: np.ndarray       # (H, W)
    vis_y: np.ndarray    # (H, W)
    vis_bgr: np.ndarray  # (H, W, 3) uint8, for colour output and metrics
    mask: Optional[np.ndarray] = None  # (H, W) uint8 class ids, when the source has masks
    teacher: Optional[np.ndarray] = None  # (H, W) float32 [0, 1], a teacher's fused Y, when the source names one


def visible_luma(vis: np.ndarray) -> np.ndarray:
    """Y plane in [0, 1] of a gray (H, W) or BGR (H, W, 3) uint8 visible image."""
    unit = to_unit(vis)
    return unit if unit.ndim == 2 else bgr_to_ycrcb(unit)[0].astype(np.float32)


def read_teacher(folder: Path, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Read a teacher's fused Y of pair `name` (16-bit PNG) into [0, 1]; a missing or mis-sized file is an error."""
    path = Path(folder) / f'{name}.png'
    if not path.is_file():
        raise FileNotFoundError(f'no teacher image {path} (training.realtime.distill fills the folder from the '
                                'teacher graph)')
    plane = read_image(path)
    if plane.shape != shape or plane.dtype != np.uint16:
        raise ValueError(f'teacher image {path} is {plane.dtype} {plane.shape}, expected uint16 {shape}')
    return plane.astype(np.float32) / np.float32(65535.0)


def load_pair(name: str, source: str, ir_path, vis_path, masks: Optional[tuple[Path, str]] = None,
              teacher: Optional[Path] = None) -> Pair:
    """Load one pair (its mask from (folder, format), its teacher Y from a folder); IR is resized to the visible."""
    vis = read_visible(vis_path)
    ir = read_ir(ir_path)
    if ir.shape[:2] != vis.shape[:2]:
        ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_LINEAR)
    vis_bgr = vis if vis.ndim == 3 else cv2.cvtColor(vis, cv2.COLOR_GRAY2BGR)
    mask = read_mask(mask_path(masks[0], name, masks[1]), masks[1], vis.shape[:2]) if masks else None
    plane = read_teacher(teacher, name, vis.shape[:2]) if teacher else None
    return Pair(name, source, ir_to_unit(ir), visible_luma(vis), vis_bgr, mask, plane)


def load_sources(sources: list[DataSource]) -> list[Pair]:
    """Load every pair of every source, in a deterministic order."""
    pairs = []
    for src in sources:
        matched = pair_folders(src.ir, src.vis).pairs
        if not matched:
            raise FileNotFoundError(f'source {src.name!r}: no pairs with matching names in {src.ir} and {src.vis}')
        masks = (Path(src.masks), src.mask_format) if src.masks else None
        teacher = Path(src.teacher) if src.teacher else None
        pairs += [load_pair(ir.stem, src.name, ir, vis, masks, teacher) for ir, vis in matched]
    return pairs


def split_holdout(pairs: list[Pair], source: str, count: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Hold out `count` pairs of one source, chosen by a seeded draw; returns (train, val)."""
    candidates = sorted(p.name for p in pairs if p.source == source)
    if count > len(candidates):
        raise ValueError(f'cannot hold out {count} pairs: source {source!r} has {len(candidates)}')
    held = set(random.Random(seed).sample(candidates, count))
    train = [p for p in pairs if not (p.source == source and p.name in held)]
    val = sorted((p for p in pairs if p.source == source and p.name in held), key=lambda p: p.name)
    return train, val


class CropSampler:
    """
    Draws batches of random crops with random flips from in-memory pairs.

    Sampling is weighted by image area so large and small images are seen per pixel,
    and driven by its own generator so a resumed run continues the same stream.
    """

    def __init__(self, pairs: list[Pair], crop: int, seed: int, target_fraction: float = 0.0):
        self.pairs = [p for p in pairs if min(p.ir.shape) >= crop]
        if not self.pairs:
            raise ValueError(f'no training pair is at least {crop}x{crop} pixels')
        area = np.array([p.ir.size for p in self.pairs], np.float64)
        self.weights = area / area.sum()
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        # A teacher's fused Y rides along as a second channel of the visible batch (distillation objectives).
        self.with_teacher = any(p.teacher is not None for p in self.pairs)
        if self.with_teacher and any(p.teacher is None for p in self.pairs):
            raise ValueError('some training pairs have a teacher image and some do not; give every source a teacher')
        # Labelled target pixels per pair, for crops drawn around a target (issue 12's objective): with
        # boxes covering a few per cent of an image, uniform crops rarely hold one.
        self.target_fraction = target_fraction
        self.targets = {i: np.argwhere((p.mask > 0) & (p.mask != IGNORE)) for i, p in enumerate(self.pairs)
                        if target_fraction > 0 and p.mask is not None and ((p.mask > 0) & (p.mask != IGNORE)).any()}
        if target_fraction > 0 and not self.targets:
            raise ValueError('target_crops > 0 but no training pair has a labelled target in its mask')

    def _window(self, index: int, around_target: bool) -> tuple[int, int]:
        """Top-left corner of a crop: uniform, or uniform among the crops that hold one random target pixel."""
        h, w = self.pairs[index].ir.shape
        if not around_target:
            return int(self.rng.integers(0, h - self.crop + 1)), int(self.rng.integers(0, w - self.crop + 1))
        ty, tx = self.targets[index][self.rng.integers(len(self.targets[index]))]
        y = int(self.rng.integers(max(ty - self.crop + 1, 0), min(ty, h - self.crop) + 1))
        x = int(self.rng.integers(max(tx - self.crop + 1, 0), min(tx, w - self.crop) + 1))
        return y, x

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """
        Return (vis_y, ir) float arrays (size, 1, crop, crop) and masks (size, crop, crop), IGNORE where none.

        With teacher images, vis_y is (size, 2, crop, crop): channel 1 is the teacher's Y of the same crop.
        """
        vis = np.empty((size, 1 + self.with_teacher, self.crop, self.crop), np.float32)
        ir = np.empty((size, 1, self.crop, self.crop), np.float32)
        masks = np.full((size, self.crop, self.crop), IGNORE, np.uint8)
        n_target = int(round(size * self.target_fraction))
        chosen = list(self.rng.choice(len(self.pairs), size=size - n_target, p=self.weights))
        if n_target:
            chosen = list(self.rng.choice(sorted(self.targets), size=n_target)) + chosen
        for k, idx in enumerate(chosen):
            pair = self.pairs[idx]
            y, x = self._window(idx, k < n_target)
            window = (slice(y, y + self.crop), slice(x, x + self.crop))
            planes = [pair.vis_y[window], pair.ir[window], masks[k] if pair.mask is None else pair.mask[window]]
            planes += [pair.teacher[window]] if self.with_teacher else []
            if self.rng.random() < 0.5:
                planes = [p[:, ::-1] for p in planes]
            if self.rng.random() < 0.5:
                planes = [p[::-1] for p in planes]
            vis[k, 0], ir[k, 0], masks[k] = planes[:3]
            if self.with_teacher:
                vis[k, 1] = planes[3]
        return vis, ir, masks
