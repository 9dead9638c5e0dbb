"""
Standard image-fusion quality metrics, matching the de-facto Python evaluator.

Most recent published tables come from the evaluator released with CDDFuse
(CVPR 2023). Its conventions are reproduced here on purpose, quirks included
(see docs in README, "Metrics"), so numbers printed by this package can be
set beside published ones:

* images are read as 8-bit BGR, converted with OpenCV's BGR->GRAY (rounded)
  and kept as float in 0..255; A = infrared, B = visible, F = fused;
* MI is in nats; SSIM uses a data range of 2 (what older scikit-image assumed
  for float input); Qabf keeps the reference's g_F-where-equal quirk.

Every function is vectorised numpy/OpenCV; `compute_all` evaluates one triple.
"""

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

METRIC_NAMES = ('EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'CC', 'VIF', 'Qabf', 'SSIM', 'MSE', 'PSNR')


def read_gray(path: Path) -> np.ndarray:
    """Read a file the way the reference evaluator does: BGR uint8 -> GRAY -> float32."""
    from fusion_ros.core.imageio import read_image
    bgr = read_image(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)


def as_gray(image: np.ndarray) -> np.ndarray:
    """Convert an in-memory uint8 image (gray or BGR) the way read_gray does."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image.astype(np.float32)


def pixel_baselines(ir: np.ndarray, vis: np.ndarray) -> dict[str, np.ndarray]:
    """Pixel-wise max and rounded mean of two gray images (same dtype out): the fusions every method should beat."""
    return {'max': np.maximum(ir, vis), 'mean': np.rint((ir.astype(np.float64) + vis) / 2).astype(ir.dtype)}


def _histogram(values: np.ndarray, bins: int) -> np.ndarray:
    return np.bincount(values.ravel(), minlength=bins).astype(np.float64)


def entropy(f: np.ndarray) -> float:
    """Compute EN, the Shannon entropy in bits of the 256-bin histogram of the rounded image."""
    p = _histogram(np.clip(np.rint(f), 0, 255).astype(np.int64), 256)
    p = p[p > 0] / f.size
    return float(-(p * np.log2(p)).sum())


def standard_deviation(f: np.ndarray) -> float:
    """SD: population standard deviation."""
    return float(np.std(f.astype(np.float64)))


def spatial_frequency(f: np.ndarray) -> float:
    """SF: root of mean squared row and column differences."""
    f = f.astype(np.float64)
    return float(np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2)))


def average_gradient(f: np.ndarray) -> float:
    """AG: mean of sqrt((Gx^2 + Gy^2) / 2) with numpy's central differences."""
    gy, gx = np.gradient(f.astype(np.float64))
    return float(np.mean(np.sqrt((gx ** 2 + gy ** 2) / 2)))


def _mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """MI (nats) of two integer-valued images from their joint histogram."""
    xi = np.rint(x).astype(np.int64).ravel()
    yi = np.rint(y).astype(np.int64).ravel()
    joint = _histogram(xi * 256 + yi, 256 * 256).reshape(256, 256) / xi.size
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    outer = np.outer(px, py)
    return float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())


def mutual_information(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """MI: I(F;A) + I(F;B) in nats."""
    return _mutual_information(f, a) + _mutual_information(f, b)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64) - x.mean(dtype=np.float64)
    y = y.astype(np.float64) - y.mean(dtype=np.float64)
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def scd(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SCD: sum of correlations of differences."""
    f64, a64, b64 = (v.astype(np.float64) for v in (f, a, b))
    return _corr(f64 - b64, a64) + _corr(f64 - a64, b64)


def correlation_coefficient(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """CC: mean Pearson correlation of F with each source."""
    return (_corr(a, f) + _corr(b, f)) / 2


def _gaussian_window(n: int, sigma: float) -> np.ndarray:
    """MATLAB fspecial('gaussian') as the reference builds it."""
    r = (n - 1) / 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Filter with 'valid' output size (the window is symmetric, so correlation equals convolution)."""
    full = cv2.filter2D(image, cv2.CV_64F, window, borderType=cv2.BORDER_CONSTANT)
    r = window.shape[0] // 2
    return full[r:image.shape[0] - r, r:image.shape[1] - r]


def _vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """Pixel-domain VIF over 4 scales (Sheikh and Bovik), with the reference's guards."""
    sigma_nsq, eps = 2.0, 1e-10
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _gaussian_window(n, n / 5.0)
        if scale > 1:
            ref = _filter_valid(ref, win)[::2, ::2]
            dist = _filter_valid(dist, win)[::2, ::2]
        mu1, mu2 = _filter_valid(ref, win), _filter_valid(dist, win)
        s1 = _filter_valid(ref * ref, win) - mu1 * mu1
        s2 = _filter_valid(dist * dist, win) - mu2 * mu2
        s12 = _filter_valid(ref * dist, win) - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        low1 = s1 < eps
        g[low1], sv[low1], s1[low1] = 0, s2[low1], 0
        low2 = s2 < eps
        g[low2], sv[low2] = 0, 0
        neg = g < 0
        sv[neg], g[neg] = s2[neg], 0
        sv[sv <= eps] = eps
        num += np.log10(1 + g * g * s1 / (sv + sigma_nsq)).sum()
        den += np.log10(1 + s1 / sigma_nsq).sum()
    vif = num / den
    return 1.0 if np.isnan(vif) else float(vif)


def vif(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """VIF: VIFp(A, F) + VIFp(B, F)."""
    return _vifp(a, f) + _vifp(b, f)


_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)


def _edge_strength_orientation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Return Sobel strength and orientation.

    Flipping both kernels (convolution vs correlation) changes neither the
    strength nor atan(Sy/Sx), so OpenCV's correlation matches the reference.
    """
    img = image.astype(np.float64)
    sx = cv2.filter2D(img, cv2.CV_64F, _SOBEL_X, borderType=cv2.BORDER_CONSTANT)
    sy = cv2.filter2D(img, cv2.CV_64F, _SOBEL_Y, borderType=cv2.BORDER_CONSTANT)
    strength = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    angle = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, sx)))
    return strength, angle


def _edge_preservation(g_x, a_x, g_f, a_f) -> np.ndarray:
    ratio = np.where(g_x > g_f, g_f / np.where(g_x > g_f, g_x, 1.0),
                     np.where(g_x < g_f, g_x / np.where(g_x < g_f, g_f, 1.0), g_f))
    orient = 1 - np.abs(a_x - a_f) / (np.pi / 2)
    q_g = 0.9994 / (1 + np.exp(-15 * (ratio - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (orient - 0.8)))
    return q_g * q_a


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Qabf: Petrovic and Xydeas' gradient-based edge preservation."""
    g_a, a_a = _edge_strength_orientation(a)
    g_b, a_b = _edge_strength_orientation(b)
    g_f, a_f = _edge_strength_orientation(f)
    q_af = _edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _edge_preservation(g_b, a_b, g_f, a_f)
    return float((q_af * g_a + q_bf * g_b).sum() / (g_a + g_b).sum())


def _ssim(x: np.ndarray, y: np.ndarray, data_range: float = 2.0, win: int = 7) -> float:
    """scikit-image's structural_similarity defaults: uniform 7x7 window, sample covariance."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mean = lambda v: cv2.blur(v, (win, win), borderType=cv2.BORDER_REFLECT_101)  # noqa: E731
    ux, uy = mean(x), mean(y)
    cov_norm = win * win / (win * win - 1)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SSIM: SSIM(F, A) + SSIM(F, B) with data_range 2 (reference quirk)."""
    return _ssim(f, a) + _ssim(f, b)


def mse(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """MSE: mean of the two sources' mean squared errors to F (0..255 scale)."""
    f64 = f.astype(np.float64)
    return float((np.mean((a - f64) ** 2) + np.mean((b - f64) ** 2)) / 2)


def psnr(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """PSNR: 10 log10(max(F)^2 / MSE); infinite when F equals both sources."""
    err = mse(f, a, b)
    return float('inf') if err == 0 else float(10 * np.log10(float(np.max(f)) ** 2 / err))


_SINGLE: dict[str, Callable[[np.ndarray], float]] = {
    'EN': entropy, 'SD': standard_deviation, 'SF': spatial_frequency, 'AG': average_gradient}
_TRIPLE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    'MI': mutual_information, 'SCD': scd, 'CC': correlation_coefficient, 'VIF': vif,
    'Qabf': qabf, 'SSIM': ssim, 'MSE': mse, 'PSNR': psnr}


def compute_all(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> dict[str, float]:
    """Every metric of METRIC_NAMES for one (F, A, B) triple of gray float images."""
    if not fused.shape == ir.shape == vis.shape:
        raise ValueError(f'metric inputs differ in size: fused {fused.shape}, ir {ir.shape}, vis {vis.shape}')
    values = {name: fn(fused) for name, fn in _SINGLE.items()}
    values.update({name: fn(fused, ir, vis) for name, fn in _TRIPLE.items()})
    return {name: values[name] for name in METRIC_NAMES}
