"""Intersection over union from an accumulated confusion matrix, the standard segmentation score."""

import numpy as np


def confusion(pred: np.ndarray, truth: np.ndarray, classes: int, ignore: int = 255) -> np.ndarray:
    """(classes, classes) counts, rows = truth, cols = prediction; pixels labelled `ignore` are skipped."""
    if pred.shape != truth.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {truth.shape} differ in shape')
    keep = truth != ignore
    t, p = truth[keep].astype(np.int64), pred[keep].astype(np.int64)
    if t.size and (t.max() >= classes or p.max() >= classes):
        raise ValueError(f'class id {max(t.max(), p.max())} outside 0..{classes - 1}')
    return np.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """Compute TP / (TP + FP + FN) per class; NaN for a class absent from both truth and prediction."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean IoU over the classes that occur (NaN classes are left out, as in the usual evaluators)."""
    return float(np.nanmean(iou_per_class(matrix)))
