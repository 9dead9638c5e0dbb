"""
One fusion pipeline, pre -> backend -> post, shared by the node, the folder CLI and bag replay.

Input: an infrared frame (uint8 or uint16, any size) and a visible frame
(uint8 gray or BGR). Output: the fused frame in the visible camera's geometry
as uint8 BGR, plus a mask when the model has one. With an end-to-end uint8
graph Python only moves bytes; with a float graph the colour maths runs here
in numpy (the reference the uint8 graph is tested against).
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from fusion_ros.backends import BackendOptions, create_backend
from fusion_ros.backends.base import Backend
from fusion_ros.core.color import bgr_to_ycrcb, fixed_range_to_uint8, ir_to_unit, to_uint8, to_unit, ycrcb_to_bgr
from fusion_ros.core.model_card import ModelCard, load_card
from fusion_ros.core.registration import Registration, make_registration, register_ir

# The target-aware SeAFusion (issue 12): it keeps more of people's and vehicles' contrast than the
# content-only model at the same standard metrics (README, "The shipped models").
DEFAULT_MODEL_NAME = 'seafusion_target.onnx'
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / 'models' / DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class IrGain:
    """How infrared counts become 8-bit intensity (see color.ir_to_unit)."""

    mode: str = 'fixed'
    low: float = 0.0
    high: Optional[float] = None
    percentiles: tuple[float, float] = (1.0, 99.0)


@dataclass
class FusionResult:
    """What one fused pair produces."""

    fused_bgr: np.ndarray                      # (H, W, 3) uint8 in the visible frame
    mask: Optional[np.ndarray] = None          # (H, W) uint8 class ids / saliency, if the model has one
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def installed_model_path() -> Path:
    """Return the shipped default model: source tree first, then the ament share directory."""
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('fusion_ros')) / 'models' / DEFAULT_MODEL_NAME
    except (ImportError, LookupError):
        return DEFAULT_MODEL


def ir_to_uint8(ir: np.ndarray, gain: IrGain) -> np.ndarray:
    """8-bit IR for the network; 8-bit input under the default fixed gain passes through untouched."""
    if ir.ndim != 2:
        raise ValueError(f'infrared image must be single-channel (H, W), got shape {ir.shape}')
    if ir.dtype == np.uint8 and gain.mode == 'fixed' and gain.low == 0 and gain.high in (None, 255):
        return ir
    if ir.dtype in (np.uint8, np.uint16) and gain.mode == 'fixed' and gain.high is None \
            and gain.low >= np.iinfo(ir.dtype).max:
        top = np.iinfo(ir.dtype).max
        raise ValueError(f'fixed IR gain: low end {gain.low:g} is not below {top}, the maximum of this '
                         f'{8 * ir.dtype.itemsize}-bit infrared frame (lower the low end, or give the high end)')
    if gain.mode == 'fixed' and ir.dtype in (np.uint8, np.uint16):
        return fixed_range_to_uint8(ir, gain.low, np.iinfo(ir.dtype).max if gain.high is None else gain.high)
    return to_uint8(ir_to_unit(ir, gain.mode, gain.low, gain.high, gain.percentiles))


def visible_to_bgr(vis: np.ndarray) -> np.ndarray:
    """Gray visible frames become 3 equal planes, so Cr = Cb = 0.5 and the output stays gray."""
    if vis.dtype != np.uint8:
        raise ValueError(f'visible image must be uint8, got {vis.dtype}')
    if vis.ndim == 2:
        return np.repeat(vis[:, :, None], 3, axis=2)
    if vis.ndim == 3 and vis.shape[2] == 3:
        return vis
    raise ValueError(f'visible image must be (H, W) or (H, W, 3), got shape {vis.shape}')


def fit_pixels(ir8: np.ndarray, vis_bgr: np.ndarray, max_pixels: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """
    Downscale a registered pair (same H, W) to at most max_pixels pixels, keeping the aspect ratio.

    Inference memory grows with the pixel count (ONNX Runtime on CPU, benchmarks/memory.py: a peak of
    about 2.5 GB per megapixel for SeAFusion), so one oversized frame could exhaust a robot's memory.
    """
    height, width = vis_bgr.shape[:2]
    if not max_pixels or height * width <= max_pixels:
        return ir8, vis_bgr
    scale = math.sqrt(max_pixels / (height * width))
    new_h = max(1, int(height * scale))
    new_w = max(1, min(int(width * scale), max_pixels // new_h))   # a side cannot shrink below 1: clamp the other
    size = (new_w, min(new_h, max_pixels // new_w))
    return (cv2.resize(ir8, size, interpolation=cv2.INTER_AREA),
            cv2.resize(vis_bgr, size, interpolation=cv2.INTER_AREA))


class FusionPipeline:
    """Pre-process, run the backend, post-process; one instance per model."""

    def __init__(self, card: ModelCard, backend: Backend, registration: Optional[Registration] = None,
                 ir_gain: IrGain = IrGain(), max_input_pixels: Optional[int] = None):
        self.card = card
        self.backend = backend
        self.registration = registration or make_registration('resize')
        self.ir_gain = ir_gain
        self.max_input_pixels = max_input_pixels   # larger pairs are fused downscaled (None: no limit)

    @classmethod
    def from_model(cls, model_path: Optional[Path] = None, backend: str = 'onnxruntime', threads: int = 0,
                   registration: Optional[Registration] = None, ir_gain: IrGain = IrGain(),
                   options: Optional[BackendOptions] = None) -> 'FusionPipeline':
        """Load the card (sha256 checked) and create the backend (a TensorRT backend may build its engine)."""
        path = Path(model_path) if model_path else installed_model_path()
        card = load_card(path)
        if card.graph not in ('uint8', 'float'):
            raise ValueError(f'{path} is a {card.graph!r} graph, not a fusion model (its card says so)')
        return cls(card, create_backend(backend, path, card, threads, options), registration, ir_gain)

    def prepare(self, ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """
        Return (ir uint8 registered into the visible frame, visible BGR uint8), within max_input_pixels.

        Registration runs at full size (a homography is in full-size pixel coordinates); only the
        registered pair is downscaled, so the output is the visible frame at a lower resolution.
        """
        vis_bgr = visible_to_bgr(vis)
        if vis_bgr.shape[0] == 0 or vis_bgr.shape[1] == 0:
            raise ValueError(f'visible image is empty: shape {vis.shape}')
        ir8 = ir_to_uint8(ir, self.ir_gain)
        return fit_pixels(register_ir(ir8, vis_bgr.shape[:2], self.registration), vis_bgr, self.max_input_pixels)

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> FusionResult:
        """Fuse one pair; raises ValueError for bad input and BackendError for a failed inference."""
        ir8, vis_bgr = self.prepare(ir, vis)
        if self.card.graph == 'uint8':
            outputs = self.backend.run({'ir': np.ascontiguousarray(ir8), 'visible_bgr': np.ascontiguousarray(vis_bgr)})
            fused = outputs['fused_bgr']
        else:
            fused, outputs = self._fuse_float(ir8, vis_bgr)
        return FusionResult(fused, self._mask(outputs), outputs)

    def _mask(self, outputs: dict[str, np.ndarray]) -> Optional[np.ndarray]:
        """(H, W) uint8 mask from the output the card names: float saliency [0, 1] becomes 0..255."""
        name = (self.card.mask or {}).get('output')
        if not name or name not in outputs:
            return None
        mask = outputs[name]
        mask = mask.reshape(mask.shape[-2:])
        return to_uint8(mask) if mask.dtype != np.uint8 else mask

    def _fuse_float(self, ir8: np.ndarray, vis_bgr: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Colour maths in numpy around a float (Y, IR) -> Y graph."""
        y, cr, cb = bgr_to_ycrcb(to_unit(vis_bgr))
        outputs = self.backend.run({'visible_y': y[None, None].astype(np.float32),
                                    'ir': to_unit(ir8)[None, None]})
        fused_y = outputs['fused_y'][0, 0]
        return to_uint8(ycrcb_to_bgr(fused_y, cr, cb)), outputs

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()
