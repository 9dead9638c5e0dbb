"""Masks beside the fused image: class ids or saliency as mono8, and a colour overlay for people to look at."""

import numpy as np

# BGR colours for class ids 0..8 (background first, transparent in the overlay); ids above wrap around.
DEFAULT_PALETTE = np.array([[0, 0, 0], [0, 0, 255], [0, 255, 0], [255, 0, 0], [0, 255, 255],
                            [255, 0, 255], [255, 255, 0], [128, 128, 255], [255, 128, 0]], np.uint8)


def colorize_mask(fused_bgr: np.ndarray, mask: np.ndarray, alpha: float = 0.5,
                  palette: np.ndarray = DEFAULT_PALETTE) -> np.ndarray:
    """Blend palette colours of the mask's ids over the fused image; id 0 (background) stays untouched."""
    if mask.shape != fused_bgr.shape[:2]:
        raise ValueError(f'mask {mask.shape} and fused image {fused_bgr.shape[:2]} differ in size')
    colours = palette[mask.astype(np.int64) % len(palette)].astype(np.float32)
    blended = (1 - alpha) * fused_bgr.astype(np.float32) + alpha * colours
    out = np.where((mask > 0)[..., None], np.rint(blended), fused_bgr)
    return out.astype(np.uint8)


def overlay_ids(mask: np.ndarray, kind: str) -> np.ndarray:
    """Class ids to colour: saliency (0..255) is split at 128 into background / salient, class maps pass."""
    return (mask >= 128).astype(np.uint8) if kind == 'saliency' else mask
