"""
Ground-truth masks in the formats fusion data sets ship them, as one uint8 class map.

Three formats are read (methods.md, datasets/README.md):

* ``yolo_boxes``: one ``class cx cy w h`` line per box, normalised (MSRS detection labels);
  boxes become filled rectangles of class id + 1, so 0 stays background. An empty file is a
  valid all-background frame. This is the only mask source available offline.
* ``msrs_labels``: MSRS 9-class label PNGs (0 unlabelled, 1 car, 2 person, 3 bike, 4 curve,
  5 car_stop, 6 guardrail, 7 color_cone, 8 bump), remapped to the box classes.
* ``ecssd``: ECSSD binary saliency masks (0/255 PNG), thresholded to 0/1.

Every loader returns (H, W) uint8 ids in BOX_CLASSES order (or 0/1 for saliency), so
training and evaluation see one format whatever the source.
"""

from pathlib import Path

import cv2
import numpy as np

BOX_CLASSES = ('background', 'person', 'bicycle', 'car')
SALIENCY_CLASSES = ('background', 'salient')
MSRS_CLASSES = ('unlabelled', 'car', 'person', 'bike', 'curve', 'car_stop', 'guardrail', 'color_cone', 'bump')
# MSRS label id -> BOX_CLASSES id; classes without a box counterpart become background.
MSRS_TO_BOX = np.array([0, 3, 1, 2, 0, 0, 0, 0, 0], np.uint8)
IGNORE = 255  # label of pixels without ground truth (skipped by losses and IoU)
MASK_FORMATS = ('yolo_boxes', 'msrs_labels', 'ecssd')
MASK_SUFFIX = {'yolo_boxes': '.txt', 'msrs_labels': '.png', 'ecssd': '.png'}


def parse_yolo_boxes(text: str, source: str = '<text>') -> list[tuple[int, float, float, float, float]]:
    """Parse ``class cx cy w h`` lines; a malformed line raises naming the file and line."""
    boxes = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, cx, cy, w, h = int(fields[0]), *map(float, fields[1:])
        except (ValueError, TypeError):
            raise ValueError(f'{source}:{number}: expected "class cx cy w h", got {line.strip()!r}') from None
        if not 0 <= cls < len(BOX_CLASSES) - 1:
            raise ValueError(f'{source}:{number}: class {cls} is not one of 0..{len(BOX_CLASSES) - 2} '
                             f'({", ".join(BOX_CLASSES[1:])})')
        boxes.append((cls, cx, cy, w, h))
    return boxes


def boxes_to_mask(boxes: list[tuple[int, float, float, float, float]], height: int, width: int) -> np.ndarray:
    """
    Rasterise normalised boxes into a class map.

    Larger boxes are drawn first so that a small object in front of a large one
    (a person before a car) keeps its own class where they overlap.
    """
    mask = np.zeros((height, width), np.uint8)
    for cls, cx, cy, w, h in sorted(boxes, key=lambda b: -b[3] * b[4]):
        y0, y1, x0, x1 = box_to_pixels(cx, cy, w, h, height, width)
        mask[y0:y1, x0:x1] = cls + 1
    return mask


def box_to_pixels(cx: float, cy: float, w: float, h: float, height: int, width: int) -> tuple[int, int, int, int]:
    """Return the (y0, y1, x0, x1) pixel slice bounds of a normalised box, clipped to the image."""
    def edge(centre: float, size: float, sign: int, extent: int) -> int:
        return int(np.clip(round((centre + sign * size / 2) * extent), 0, extent))
    return edge(cy, h, -1, height), edge(cy, h, 1, height), edge(cx, w, -1, width), edge(cx, w, 1, width)


def _read_png(path: Path) -> np.ndarray:
    """Read a single-channel label image exactly as stored (no colour conversion)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'cannot read mask image {path}')
    if image.ndim != 2:
        raise ValueError(f'mask image {path} must be single-channel, got shape {image.shape}')
    return image


def read_msrs_label(path: Path) -> np.ndarray:
    """Read an MSRS 9-class label PNG and map it to BOX_CLASSES ids."""
    label = _read_png(path)
    if label.max() >= len(MSRS_CLASSES):
        raise ValueError(f'{path}: label id {int(label.max())} outside the 9 MSRS classes')
    return MSRS_TO_BOX[label]


def read_ecssd_mask(path: Path) -> np.ndarray:
    """Read an ECSSD 0/255 saliency mask as 0/1 (anti-aliased edges split at mid-grey)."""
    return (_read_png(path) > 127).astype(np.uint8)


def read_mask(path: Path, fmt: str, shape: tuple[int, int]) -> np.ndarray:
    """Read one mask of the given format for an image of (H, W) shape."""
    path = Path(path)
    if fmt == 'yolo_boxes':
        return boxes_to_mask(parse_yolo_boxes(path.read_text(), str(path)), *shape)
    if fmt == 'msrs_labels':
        mask = read_msrs_label(path)
    elif fmt == 'ecssd':
        mask = read_ecssd_mask(path)
    else:
        raise ValueError(f'unknown mask format {fmt!r}; known: {", ".join(MASK_FORMATS)}')
    if mask.shape != tuple(shape):
        raise ValueError(f'mask {path} is {mask.shape[1]}x{mask.shape[0]}, its image is {shape[1]}x{shape[0]}')
    return mask


def mask_path(folder: Path, stem: str, fmt: str) -> Path:
    """Return where the mask of image `stem` lives in a folder of masks of format `fmt`."""
    if fmt not in MASK_SUFFIX:
        raise ValueError(f'unknown mask format {fmt!r}; known: {", ".join(MASK_FORMATS)}')
    return Path(folder) / (stem + MASK_SUFFIX[fmt])
