"""
Parameters of fusion_node: one table with defaults, descriptions, ranges and validation.

Defaults live here only (config/fusion.yaml repeats them for users to edit;
a test checks the two agree), and `validate` is the single place a value is
judged, used both at configure time and by the set-parameters callback.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from fusion_ros.backends import BackendOptions

from fusion_ros.core.color import IR_GAIN_MODES
from fusion_ros.core.compressed import TRANSPORTS
from fusion_ros.core.masks import DEFAULT_PALETTE
from fusion_ros.core.pipeline import IrGain
from fusion_ros.core.pixel_formats import count_range, Radiometry, TEMPERATURE_UNITS
from fusion_ros.core.registration import REGISTRATION_MODES, make_registration
from fusion_ros.ros.echo import clip, short_repr
from fusion_ros.tensorrt.engine_cache import DEFAULT_PROFILE, Profile

OUTPUT_ENCODINGS = ('bgr8', 'rgb8', 'mono8')
BACKENDS = ('onnxruntime', 'tensorrt', 'torch')
PRECISIONS = ('fp16', 'fp32')
RELIABILITIES = ('best_effort', 'reliable')
PAIRING_MODES = ('approximate', 'latest')


@dataclass(frozen=True)
class Param:
    """One declared parameter."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None
    check: Optional[Callable[[Any], Optional[str]]] = None   # returns a reason when invalid


def _palette_reason(values: Any) -> Optional[str]:
    if len(values) == 0 or len(values) % 3 or any(not 0 <= v <= 255 for v in values):
        return f'mask.palette must be B, G, R triples of 0..255 (a multiple of 3 numbers), got {short_repr(values)}'
    return None


def _hw_reason(values: Any) -> Optional[str]:
    if len(values) != 2 or any(v < 1 for v in values):
        return f'engine profile sizes are [height, width] of positive integers, got {short_repr(values)}'
    return None


def _homography_reason(values: Any) -> Optional[str]:
    if len(values) == 0:
        return None
    try:
        make_registration('homography', list(values))
    except ValueError as err:
        return str(err)
    return None


PARAMS = (
    Param('autostart', True, 'configure and activate on start-up (plain `ros2 run` use)', read_only=True),
    Param('model_path', '', 'ONNX model with its JSON card; empty = the shipped default (target-aware SeAFusion)',
          read_only=True),
    Param('backend', 'onnxruntime', 'inference backend: onnxruntime (any machine) | tensorrt (NVIDIA GPU, engine '
          'built or loaded in configure) | torch (CUDA fp16 + CUDA graphs, or CPU)', read_only=True, choices=BACKENDS),
    Param('threads', 0, 'backend CPU threads (0 = runtime default)', read_only=True, low=0, high=256),
    Param('precision', 'fp16', 'tensorrt and torch on CUDA: fp16 | fp32', read_only=True, choices=PRECISIONS),
    Param('engine.path', '', 'TensorRT plan file; empty = $ROS_HOME/fusion_ros/engines/<graph>-<sha256>.engine '
          '(ROS_HOME defaults to ~/.ros; the model folder may be read-only)',
          read_only=True),
    Param('engine.profile_min', list(DEFAULT_PROFILE.min_hw), 'smallest H, W the engine accepts', read_only=True,
          check=_hw_reason),
    Param('engine.profile_opt', list(DEFAULT_PROFILE.opt_hw), 'H, W the engine is tuned for (your camera)',
          read_only=True, check=_hw_reason),
    Param('engine.profile_max', list(DEFAULT_PROFILE.max_hw), 'largest H, W the engine accepts', read_only=True,
          check=_hw_reason),
    Param('engine.workspace_mb', 1024, 'TensorRT builder workspace limit, MiB', read_only=True, low=16, high=65536),
    Param('engine.timing_cache', '', 'TensorRT timing cache file (speeds up rebuilds); empty = none',
          read_only=True),
    Param('engine.allow_rebuild', True, 'rebuild a plan whose cache key (TensorRT, GPU, ONNX graph, precision, '
          'profile) differs; false = refuse and fail configure', read_only=True),
    Param('cuda_graphs', True, 'torch on CUDA: replay a captured CUDA graph while the input size is fixed',
          read_only=True),
    Param('pairing.mode', 'approximate', 'approximate: stamps within slop; latest: newest IR with each visible frame',
          choices=PAIRING_MODES),
    Param('pairing.slop', 0.02, 'largest |IR - visible| stamp difference of a pair, seconds', low=1e-6, high=10.0),
    Param('pairing.queue_size', 10, 'frames kept per stream while waiting for a partner', low=1, high=1000),
    Param('pairing.clock_jump_threshold', 1.0, 'a stamp this many seconds (or more) older than its stream\'s last '
          'one is a clock jump (bag loop, sim reset, glitched camera clock): stamp tracking and pairing restart '
          'with one WARN; a smaller step back is a late frame and is skipped', low=1e-3, high=1e6),
    Param('registration.mode', 'resize', 'IR into the visible frame: none | resize | homography',
          choices=REGISTRATION_MODES),
    Param('registration.homography', [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
          'row-major 3x3 IR->visible pixel homography (9 numbers)', check=_homography_reason),
    Param('registration.calibrated_score', 0.0, 'alignment score of the rig when calibrated (fusion-ros calibrate '
          'writes it into rig.yaml); 0 = not calibrated, no alignment WARN', low=0.0, high=1.0),
    Param('registration.score_every', 10, 'score the IR/visible alignment of every Nth fused pair (published on '
          '/diagnostics); 0 = never', low=0, high=100000),
    Param('registration.score_warn_ratio', 0.5, 'WARN when the median of the recent alignment scores falls below '
          'this fraction of registration.calibrated_score', low=0.0, high=1.0),
    Param('ir.transport', 'raw', 'raw: sensor_msgs/Image on ir/image; compressed: sensor_msgs/CompressedImage on '
          'ir/image/compressed (image_transport; JPEG or PNG, a 16-bit PNG stays 16-bit)', read_only=True,
          choices=TRANSPORTS),
    Param('visible.transport', 'raw', 'raw: sensor_msgs/Image on visible/image; compressed: '
          'sensor_msgs/CompressedImage on visible/image/compressed (image_transport; JPEG or PNG)', read_only=True,
          choices=TRANSPORTS),
    Param('ir.temperature_unit', 'celsius', 'unit of 32FC1 infrared images and of ir_gain.temperature_low/high: '
          'celsius | kelvin', choices=TEMPERATURE_UNITS),
    Param('ir.radiometric_scale', 0.01, 'kelvin per count of 16-bit radiometric IR (FLIR TLinear: 0.01 or 0.1); '
          '32FC1 temperatures are converted to counts of this scale', low=1e-6, high=100.0),
    Param('ir.radiometric_offset', 0.0, 'kelvin at count 0 (FLIR TLinear: 0; Optris, (count - 1000) / 10 degC: '
          '173.15 with scale 0.1)', low=-10000.0, high=10000.0),
    Param('ir_gain.mode', 'fixed', '16-bit IR to 8 bit: fixed | minmax | percentile | temperature (a fixed range in '
          'degrees: ir_gain.temperature_low/high)', choices=IR_GAIN_MODES + ('temperature',)),
    Param('ir_gain.low', 0.0, 'fixed mode: raw value mapped to black', low=0.0, high=65535.0),
    Param('ir_gain.high', 0.0, 'fixed mode: raw value mapped to white (0 = the encoding maximum)',
          low=0.0, high=65535.0),
    Param('ir_gain.percentile_low', 1.0, 'percentile mode: lower percentile', low=0.0, high=100.0),
    Param('ir_gain.percentile_high', 99.0, 'percentile mode: upper percentile', low=0.0, high=100.0),
    Param('ir_gain.temperature_low', 0.0, 'temperature mode: temperature mapped to black (ir.temperature_unit)',
          low=-273.15, high=10000.0),
    Param('ir_gain.temperature_high', 50.0, 'temperature mode: temperature mapped to white (ir.temperature_unit)',
          low=-273.15, high=10000.0),
    Param('max_input_pixels', 1920 * 1080, 'pairs larger than this many pixels are fused downscaled to fit '
          '(aspect ratio kept; fused/image and fused/camera_info then have the reduced size, one WARN per period): '
          'inference memory grows with the pixel count: a peak of about 2.5 GB per megapixel for SeAFusion on ONNX '
          'Runtime CPU (benchmarks/memory.py)', low=65536, high=268435456),
    Param('output_encoding', 'bgr8', 'encoding of fused/image', choices=OUTPUT_ENCODINGS),
    Param('output.compressed', False, 'also publish fused/image/compressed and fused/mask_color/compressed '
          '(sensor_msgs/CompressedImage, JPEG; image_transport names them so): 1280x720 raw bgr8 at 30 Hz is '
          '83 MB/s', read_only=True),
    Param('output.jpeg_quality', 90, 'JPEG quality of the compressed outputs', low=1, high=100),
    Param('publish_mask', True, 'publish fused/mask and fused/mask_color when the model has a mask output'),
    Param('mask.alpha', 0.5, 'opacity of the class colours in fused/mask_color', low=0.0, high=1.0),
    Param('mask.palette', [int(v) for v in DEFAULT_PALETTE.ravel()],
          'fused/mask_color colours: B, G, R per class id (id 0 = background, left uncoloured)',
          check=_palette_reason),
    Param('qos.input.reliability', 'best_effort', 'input QoS reliability (cameras publish best effort, REP-2003)',
          read_only=True, choices=RELIABILITIES),
    Param('qos.input.depth', 5, 'input QoS history depth', read_only=True, low=1, high=1000),
    Param('qos.output.reliability', 'reliable', 'output QoS reliability', read_only=True, choices=RELIABILITIES),
    Param('qos.output.depth', 5, 'output QoS history depth', read_only=True, low=1, high=1000),
    Param('diagnostics_period', 1.0, 'seconds between /diagnostics messages', read_only=True, low=0.05, high=60.0),
    Param('no_pair_warn_after', 2.0, 'WARN in diagnostics when no pair formed for this many seconds',
          low=0.1, high=3600.0),
    Param('stream_warn_after', 2.0, 'WARN in diagnostics, per stream and with its age, when an input stream has '
          'been silent this many seconds', low=0.1, high=3600.0),
    Param('no_output_error_after', 10.0, 'ERROR in diagnostics when pairs keep forming but no fused frame was '
          'published for this many seconds (every pair skipped or failing); keep it above the slowest inference',
          low=0.1, high=3600.0),
)
BY_NAME = {p.name: p for p in PARAMS}


def validate(name: str, value: Any) -> Optional[str]:
    """
    Return why value is not acceptable for parameter name, or None if it is.

    Never raises: the parameter callback runs inside rclpy's service handler, where an exception
    (an OverflowError from a 1e103 homography entry) would end the node process.
    """
    param = BY_NAME.get(name)
    if param is None:
        return None
    try:
        if param.choices and value not in param.choices:
            return f'{name} must be one of {", ".join(param.choices)}; got {short_repr(value)}'
        if param.low is not None and not param.low <= value <= param.high:
            return f'{name} must be in [{param.low}, {param.high}]; got {short_repr(value)}'
        reason = param.check(value) if param.check else None
    except Exception as err:  # a check that cannot judge a value rejects it
        return f'{name}: cannot use {short_repr(value)}: {type(err).__name__}: {clip(str(err))}'
    return f'{name}: {reason}' if reason and not reason.startswith(name) else reason


def problems(values: dict[str, Any]) -> list[str]:
    """Every reason the values cannot be used: single values first, then the combinations they cannot judge."""
    found = [reason for reason in (validate(name, value) for name, value in values.items()) if reason]
    if found:
        return found
    if values.get('registration.mode') == 'homography' and len(values.get('registration.homography', [])) != 9:
        found.append('registration.mode homography needs registration.homography with 9 numbers')
    low, high = values.get('ir_gain.low', 0.0), values.get('ir_gain.high', 0.0)
    if high and low >= high:
        found.append(f'ir_gain.low must be below ir_gain.high (or set ir_gain.high 0 for the encoding maximum); got '
                     f'{low} >= {high}')
    if not high and low >= 65535:
        found.append(f'ir_gain.low must be below 65535, the 16-bit maximum ir_gain.high 0 stands for; got {low}')
    if values.get('ir_gain.percentile_low', 1.0) >= values.get('ir_gain.percentile_high', 99.0):
        found.append('ir_gain.percentile_low must be below ir_gain.percentile_high')
    if values.get('ir_gain.mode') == 'temperature':
        try:
            ir_gain(values)
        except ValueError as err:
            found.append(f'ir_gain.temperature_low/high: {err}')
    try:
        engine_profile(values)
    except ValueError as err:
        found.append(f'engine.profile_min/opt/max: {err}')
    return found


def validate_all(values: dict[str, Any]) -> Optional[str]:
    """Return the first reason the values cannot be used together, or None."""
    found = problems(values)
    return found[0] if found else None


def engine_profile(values: dict[str, Any]) -> Profile:
    """Return the TensorRT optimisation profile the engine.* parameters describe (validated)."""
    sizes = [tuple(int(v) for v in values.get(f'engine.profile_{k}', BY_NAME[f'engine.profile_{k}'].default))
             for k in ('min', 'opt', 'max')]
    profile = Profile(*sizes)
    profile.validate()
    return profile


def backend_options(values: dict[str, Any]) -> BackendOptions:
    """Map the node's parameters onto the backends' options."""
    def optional_path(name: str) -> Optional[Path]:
        return Path(values[name]) if values[name] else None

    return BackendOptions(threads=values['threads'], precision=values['precision'], cuda_graphs=values['cuda_graphs'],
                          engine_path=optional_path('engine.path'), engine_profile=engine_profile(values),
                          engine_workspace_mb=values['engine.workspace_mb'],
                          engine_timing_cache=optional_path('engine.timing_cache'),
                          engine_allow_rebuild=values['engine.allow_rebuild'])


def radiometry(values: dict[str, Any]) -> Radiometry:
    """Return the counts-to-kelvin law the ir.radiometric_* parameters describe."""
    return Radiometry(values['ir.radiometric_scale'], values['ir.radiometric_offset'])


def ir_gain(values: dict[str, Any]) -> IrGain:
    """
    Return the IR gain the ir_gain.* parameters describe; raise ValueError for a temperature range out of reach.

    Temperature mode is a fixed gain over the count range the temperatures map to through the
    radiometric law, so 16-bit counts and 32FC1 temperatures (converted to counts) share it.
    """
    if values['ir_gain.mode'] == 'temperature':
        low, high = count_range(values['ir_gain.temperature_low'], values['ir_gain.temperature_high'],
                                values['ir.temperature_unit'], radiometry(values))
        return IrGain('fixed', low, high)
    return IrGain(values['ir_gain.mode'], values['ir_gain.low'], values['ir_gain.high'] or None,
                  (values['ir_gain.percentile_low'], values['ir_gain.percentile_high']))
