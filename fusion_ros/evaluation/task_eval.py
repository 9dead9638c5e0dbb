"""
Task-driven evaluation (the SeAFusion paper's idea): how well one segmenter does on each input.

The same segmenter reads the visible image, the infrared image and each method's fused image
(as luminance, so colour does not favour the visible input) and is scored by mIoU against
ground-truth masks. A fused image that helps a downstream network should beat both sources.
Images of another size than the mask (IR of a cross-resolution rig) are resized to it first.
Writes ``segmentation.json`` and ``segmentation.md`` beside the metric reports.
"""

import json
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from tqdm import tqdm

from fusion_ros.backends import create_backend
from fusion_ros.core.imageio import list_images
from fusion_ros.core.model_card import load_card
from fusion_ros.evaluation.mask_io import IGNORE, mask_path, read_mask
from fusion_ros.evaluation.segmentation_metrics import confusion, iou_per_class, mean_iou


class SegmenterRunner:
    """A standalone segmenter graph (card graph kind 'segment'): luma uint8 (H, W) -> class ids (H, W)."""

    def __init__(self, model_path: Path, threads: int = 0):
        self.card = load_card(model_path)
        if self.card.graph != 'segment':
            raise ValueError(f'{model_path} is a {self.card.graph!r} graph; task-driven evaluation needs a '
                             f"segmenter (card graph 'segment', e.g. models/seafusion_seg_segmenter.onnx)")
        self.classes = list(self.card.mask['classes'])
        self.backend = create_backend('onnxruntime', Path(model_path), self.card, threads)

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        """Class ids of one gray image."""
        return self.backend.run({'luma': np.ascontiguousarray(luma)})['classes']


def _luma(path: Path, shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Gray uint8 (BT.601 weights, like the fusion Y), resized to shape when one is given and differs."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f'cannot read image {path}')
    if shape is not None and image.shape != shape:
        image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return image


def segmentation_scores(segmenter: SegmenterRunner, inputs: dict[str, Path], masks_dir: Path, mask_format: str,
                        stems: Optional[list[str]] = None, progress: bool = True) -> dict[str, dict]:
    """
    Score the segmenter on every input folder over the stems that have a mask and an image in all folders.

    Returns {input: {'miou', 'iou': {class: value}, 'images'}}. Raises ValueError when no stem is
    common to the masks and every folder, so a wrong path cannot produce an empty table.
    """
    listed = {name: list_images(folder) for name, folder in inputs.items()}
    common = set.intersection(*(set(files) for files in listed.values()))
    if stems is not None:
        common &= set(stems)
    usable = sorted(s for s in common if mask_path(masks_dir, s, mask_format).is_file())
    if not usable:
        raise ValueError(f'no image has a mask in {masks_dir} ({mask_format}) and a file in every folder of '
                         f'{", ".join(f"{k}={v}" for k, v in inputs.items())}')
    n = len(segmenter.classes)
    matrices = {name: np.zeros((n, n), np.int64) for name in inputs}
    first = next(iter(inputs))      # its geometry is the masks' (the visible frame)
    for stem in tqdm(usable, desc='segmentation', disable=not progress, dynamic_ncols=True):
        reference = _luma(listed[first][stem])
        truth = read_mask(mask_path(masks_dir, stem, mask_format), mask_format, reference.shape)
        for name in inputs:
            luma = reference if name == first else _luma(listed[name][stem], reference.shape)
            matrices[name] += confusion(segmenter(luma), truth, n, IGNORE)
    return {name: {'miou': mean_iou(m), 'images': len(usable),
                   'iou': {c: (None if np.isnan(v) else float(v)) for c, v in zip(segmenter.classes, iou_per_class(m))}}
            for name, m in matrices.items()}


def segmentation_markdown(scores: dict[str, dict]) -> str:
    """Table with one row per input: mIoU and the IoU of every class."""
    classes = list(next(iter(scores.values()))['iou'])
    lines = ['| input | mIoU | ' + ' | '.join(classes) + ' |', '|' + '---|' * (len(classes) + 2)]
    for name, s in scores.items():
        cells = ['-' if s['iou'][c] is None else f'{s["iou"][c]:.3f}' for c in classes]
        lines.append(f'| {name} | {s["miou"]:.3f} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def write_segmentation_report(scores: dict[str, dict], out_dir: Path, segmenter: Path, masks: Path) -> None:
    """Save JSON (with what was used) and Markdown into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'segmentation.json').write_text(json.dumps(
        {'segmenter': str(segmenter), 'masks': str(masks), 'scores': scores}, indent=2) + '\n')
    (out_dir / 'segmentation.md').write_text(segmentation_markdown(scores))
