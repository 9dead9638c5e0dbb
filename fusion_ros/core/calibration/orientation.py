"""
Edge-orientation fields: what thermal and visible images of one scene have in common.

Intensities of the two modalities are unrelated (a warm wall is bright in IR and dark in the
visible image; an edge can flip its sign), but the *orientation* of an edge is shared. Each pixel
becomes the doubled-angle vector (cos 2t, sin 2t) of its gradient direction t, which ignores the
sign of the edge, weighted by how strong the gradient is against its neighbourhood and the image's
noise. Dividing by the local gradient energy makes a faint IR edge count as much as a sharp
visible one; the noise floor keeps flat, noisy areas near zero instead of amplifying them.
"""

import cv2
import numpy as np

# Averaging window of the structure tensor, in multiples of the smoothing sigma.
_TENSOR_SCALE = 1.5
# Neighbourhood of the local contrast normalisation, in multiples of the smoothing sigma.
_LOCAL_SCALE = 4.0
# Noise floor: this multiple of the median gradient magnitude (most pixels of a scene are flat).
_NOISE_FACTOR = 1.5


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """
    Return an image as float32 gray in about [0, 1], whatever its type or channel count.

    Why a robust range (1st-99th percentile): a 16-bit radiometric frame uses a few hundred counts
    of its 65,536, and the field below must not depend on the camera's gain.
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.shape[2] == 3 else image[..., 0]
    gray = image.astype(np.float32)
    low, high = np.percentile(gray, (1, 99))
    if high <= low:
        return np.zeros_like(gray)
    return np.clip((gray - np.float32(low)) / np.float32(high - low), -0.5, 1.5).astype(np.float32)


def gradients(gray: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed derivatives along x and y (per pixel)."""
    gray = gray.astype(np.float32, copy=False)
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma) if sigma > 0 else gray
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return gx, gy


def orientation_field(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """
    Return the (H, W, 2) float32 doubled-angle edge field of a gray float image.

    The doubled-angle vectors are averaged over a neighbourhood (the structure tensor), so the
    random orientations of noise and fine texture cancel while a straight edge keeps its
    direction; each vector is then divided by the local and the image-wide gradient energy.
    Its length is below 1: near 1 on an edge that stands out of its neighbourhood, near 0 on flat or
    noisy ground. Two fields of one scene correlate where their edges line up, whatever the modality.
    """
    gx, gy = gradients(gray, sigma)
    rho = _TENSOR_SCALE * sigma
    energy = cv2.GaussianBlur(gx * gx + gy * gy, (0, 0), rho)
    cos2 = cv2.GaussianBlur(gx * gx - gy * gy, (0, 0), rho)
    sin2 = cv2.GaussianBlur(2.0 * gx * gy, (0, 0), rho)
    local = cv2.GaussianBlur(energy, (0, 0), _LOCAL_SCALE * sigma)
    noise = _NOISE_FACTOR * float(np.median(np.sqrt(energy)))
    denominator = energy + local + noise * noise + 1e-12
    return np.dstack([cos2 / denominator, sin2 / denominator]).astype(np.float32)


def structure_fraction(field: np.ndarray, threshold: float = 0.25) -> float:
    """Fraction of pixels whose edge vector is longer than threshold: how much a frame can tell."""
    length = np.sqrt(np.sum(field * field, axis=-1))
    return float(np.mean(length > threshold))
