"""
Real sample pairs for the checks every exported graph goes through (parity, fp16, TensorRT's Cast rule).

Its own module so that the exporter and the fp16 validator both use it without importing each other.
"""

from pathlib import Path

import numpy as np

from fusion_ros.core.imageio import pair_folders, read_ir, read_visible
from fusion_ros.core.pipeline import visible_to_bgr
from fusion_ros.core.registration import make_registration, register_ir


def load_samples(folder: Path, limit: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Real sample pairs (name, ir uint8 registered, visible BGR uint8) for parity checks."""
    pairing = pair_folders(Path(folder) / 'ir', Path(folder) / 'vi')
    if not pairing.pairs:
        raise FileNotFoundError(f'no sample pairs under {folder}/ir and {folder}/vi')
    resize = make_registration('resize')
    samples = []
    for ir_path, vis_path in pairing.pairs[:limit]:
        vis = visible_to_bgr(read_visible(vis_path))
        samples.append((ir_path.stem, register_ir(read_ir(ir_path), vis.shape[:2], resize), vis))
    return samples
