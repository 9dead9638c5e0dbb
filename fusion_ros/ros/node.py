"""
fusion_node: a lifecycle node that pairs IR and visible frames and publishes the fused image.

A thin rclpy shell around the ROS-free core: subscription callbacks only check
stamps (stamps.py) and pair them (pairing.py); the freshest pair goes through a
one-slot mailbox to one supervised inference thread (worker.py), which decodes,
runs the shared FusionPipeline and publishes. Health on /diagnostics is a pure
function of what happened when (health.py). The model loads in configure, topics
exist while active, cleanup releases everything. No input, parameter value or
frame failure stops fusion: each is skipped or refused with a reason, logged once
per reason per period (log_throttle.py) and counted.
"""

import threading
import time
import traceback
from typing import Any, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from fusion_ros.core.calibration.score import alignment_score, footprint_of
from fusion_ros.core.masks import colorize_mask, overlay_ids
from fusion_ros.core.compressed import CompressedImageError, transport_topic
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.core.registration import make_registration, register_ir
from fusion_ros.ros import codec
from fusion_ros.ros.alignment_monitor import AlignmentMonitor
from fusion_ros.ros.echo import clip
from fusion_ros.ros.health import assess, HealthLimits, OK, WARN
from fusion_ros.ros.log_throttle import reason_key, ReasonThrottle
from fusion_ros.ros.mailbox import Mailbox
from fusion_ros.ros.node_params import backend_options, BY_NAME, ir_gain, PARAMS, problems, radiometry, validate
from fusion_ros.ros.pairing import IR, make_pairer, STREAM_NAMES, VISIBLE
from fusion_ros.ros.stamps import StampGuard, StampVerdict
from fusion_ros.ros.stats import NodeStats
from fusion_ros.ros.worker import SupervisedWorker

LOG_PERIOD_S = 2.0   # each kind of warning or error is logged at most once per period


def _descriptor(param) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=param.description, read_only=param.read_only)
    if param.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(param.choices)
    if param.low is not None and not isinstance(param.default, bool):
        if isinstance(param.default, int):
            desc.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=0)]
        elif isinstance(param.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    return desc


def stamp_ns(msg: Any) -> int:
    """Header stamp in nanoseconds."""
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def scaled_camera_info(info: CameraInfo, width: int, height: int) -> CameraInfo:
    """Return the visible CameraInfo, rescaled if the published image has another size."""
    if (info.width, info.height) == (width, height) or not info.width or not info.height:
        return info
    sx, sy = width / info.width, height / info.height
    out = CameraInfo(header=info.header, width=width, height=height, distortion_model=info.distortion_model,
                     d=info.d, r=info.r)
    k = list(info.k)
    k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
    p = list(info.p)
    p[0], p[2], p[3], p[5], p[6] = p[0] * sx, p[2] * sx, p[3] * sx, p[5] * sy, p[6] * sy
    out.k, out.p = k, p
    return out


class FusionNode(LifecycleNode):
    """Lifecycle node: configure loads the model, activate opens the topics."""

    def __init__(self, **kwargs):
        super().__init__('fusion_node', **kwargs)
        self._bad_overrides: dict[str, str] = {}    # start-up values rejected; configure refuses until they are set
        for param in PARAMS:
            try:
                self.declare_parameter(param.name, param.default, _descriptor(param))
            except (InvalidParameterTypeException, InvalidParameterValueException) as err:
                # a bad value in the params file must not crash the process: keep the default, refuse configure
                self.declare_parameter(param.name, param.default, _descriptor(param), ignore_override=True)
                why = str(err).removesuffix(f': {param.name}')
                self._bad_overrides[param.name] = f'{param.name}: start-up value rejected: {clip(why)}'
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pipeline: Optional[FusionPipeline] = None
        self.pairer = None
        self.mailbox = Mailbox()
        self.stats = NodeStats()
        self._throttle = ReasonThrottle(LOG_PERIOD_S)
        self._limits = HealthLimits()
        self.alignment = AlignmentMonitor()
        self._pair_lock = threading.Lock()   # callbacks may run concurrently; never held during inference
        self._pairing_settings: Optional[tuple] = None
        self._worker = SupervisedWorker(self._inference_loop, 'fusion_inference', self._on_worker_death)
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self._stamps = StampGuard(int(BY_NAME['pairing.clock_jump_threshold'].default * 1e9))
        self._camera_info: Optional[CameraInfo] = None
        self._diag_timer = None
        self._diag_pub = None

    # ---- parameters -------------------------------------------------------------------------
    def _values(self) -> dict[str, Any]:
        return {p.name: self.get_parameter(p.name).value for p in PARAMS}

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Accept a change only if the merged values are valid; nothing here may raise (it would end the process)."""
        try:
            for param in params:
                reason = validate(param.name, param.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
            current = self._values()
            merged = {**current, **{p.name: p.value for p in params}}
            known = set(problems(current))      # a bad start-up value must not block fixing the others
            introduced = [reason for reason in problems(merged) if reason not in known]
            if introduced:
                return SetParametersResult(successful=False, reason='; '.join(introduced))
            if self.pipeline is not None:
                self._apply(merged)
        except Exception as err:  # a value the checks missed: refuse it rather than die
            return SetParametersResult(successful=False, reason=f'cannot apply: {type(err).__name__}: {clip(str(err))}')
        for param in params:
            self._bad_overrides.pop(param.name, None)
        return SetParametersResult(successful=True)

    def _apply(self, values: dict[str, Any]) -> None:
        """
        Apply run-time tunable values (pairing, registration, gain, health limits) to the live objects.

        Each setting is replaced by one attribute assignment, so the inference thread sees either
        the old or the new value and needs no lock; the pairer is rebuilt (dropping its queued
        frames) only when a pairing setting changed.
        """
        homography = values['registration.homography'] if values['registration.mode'] == 'homography' else None
        self.pipeline.registration = make_registration(values['registration.mode'], homography)
        self.alignment.configure(values['registration.score_every'], values['registration.calibrated_score'],
                                 values['registration.score_warn_ratio'])
        self.pipeline.ir_gain = ir_gain(values)
        self.ir_units = (values['ir.temperature_unit'], radiometry(values))
        self.jpeg_quality = values['output.jpeg_quality']
        pairing = (values['pairing.mode'], values['pairing.queue_size'], values['pairing.slop'])
        if pairing != self._pairing_settings:
            with self._pair_lock:
                self.pairer = make_pairer(*pairing)
            self._pairing_settings = pairing
        self._stamps.jump_threshold_ns = int(values['pairing.clock_jump_threshold'] * 1e9)
        self.pipeline.max_input_pixels = values['max_input_pixels']
        self.output_encoding = values['output_encoding']
        self.mask_style = (values['mask.alpha'], np.array(values['mask.palette'], np.uint8).reshape(-1, 3))
        self._limits = HealthLimits(values['no_pair_warn_after'], values['stream_warn_after'],
                                    values['no_output_error_after'])

    # ---- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model card and backend, create publishers."""
        values = self._values()
        reasons = list(self._bad_overrides.values()) + problems(values)
        if reasons:
            self.get_logger().error('configure failed: ' + '; '.join(reasons))
            return TransitionCallbackReturn.FAILURE
        try:
            # a TensorRT backend builds (or loads) its engine here, never in a frame callback
            self.pipeline = FusionPipeline.from_model(values['model_path'] or None, backend=values['backend'],
                                                      options=backend_options(values))
        except (ValueError, FileNotFoundError, ImportError, RuntimeError) as err:
            self.get_logger().error(f'configure failed: cannot load model {values["model_path"]!r} with backend '
                                    f'{values["backend"]!r}: {err}')
            return TransitionCallbackReturn.FAILURE
        self._apply(values)
        out_qos = self._qos('output')
        self._pubs = {'image': self.create_lifecycle_publisher(Image, 'fused/image', out_qos),
                      'info': self.create_lifecycle_publisher(CameraInfo, 'fused/camera_info', out_qos)}
        if self.pipeline.card.mask and values['publish_mask']:
            self._pubs['mask'] = self.create_lifecycle_publisher(Image, 'fused/mask', out_qos)
            self._pubs['mask_color'] = self.create_lifecycle_publisher(Image, 'fused/mask_color', out_qos)
        if values['output.compressed']:   # image_transport's names: <base topic>/compressed
            for key, topic in (('image', 'fused/image'), ('mask_color', 'fused/mask_color')):
                if key in self._pubs:
                    self._pubs[f'{key}_jpeg'] = self.create_lifecycle_publisher(
                        CompressedImage, transport_topic(topic, 'compressed'), out_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(values['diagnostics_period'],
                                             lambda: self._guard('diagnostics', self._publish_diagnostics))
        self.get_logger().info(f'configured: {self.pipeline.backend.describe()}')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe and start the inference thread."""
        in_qos = self._qos('input')
        with self._pair_lock:      # a new session: frames queued or stamps seen before do not count
            self._stamps.reset()
            self.pairer.reset()
        self.stats.activated()
        self._worker.start(prepare=self.mailbox.reopen)
        self._subs = [self._subscribe_images(stream, in_qos) for stream in (IR, VISIBLE)]
        self._subs.append(self._subscribe(CameraInfo, 'visible/camera_info', self._on_camera_info, in_qos))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the inference thread."""
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self.stop_worker()
        self.stats.deactivated()
        return super().on_deactivate(state)

    def stop_worker(self, timeout_s: float = 10.0) -> None:
        """Stop the inference thread and wait for the frame in flight, so nothing publishes after teardown."""
        self._worker.stop(self.mailbox.close, timeout_s)

    def destroy_node(self) -> None:
        """
        Destroy the node now, lifecycle state machine included.

        rclpy's LifecycleNode leaves its state machine, which holds the rcl node, to the garbage
        collector. When a collection finally freed it, rcl unregistered the /rosout publisher of the
        logger name 'fusion_node', and that entry then belonged to a newer node of the same name in the
        process (bag replays, tests): the newer node's log lines stopped reaching /rosout.
        """
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model and publishers."""
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self._diag_timer:
            self.destroy_timer(self._diag_timer)
        if self._diag_pub:
            self.destroy_publisher(self._diag_pub)
        self._diag_timer = self._diag_pub = None
        if self.pipeline:
            self.pipeline.close()
        self.pipeline = None
        self._pairing_settings = None   # the next configure starts with empty pairing queues
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the thread if still running."""
        self.stop_worker()
        return TransitionCallbackReturn.SUCCESS

    def _subscribe(self, msg_type, topic: str, callback, qos: QoSProfile):
        """Subscribe, and say so loudly when a publisher's QoS can never match ours (silent nothing otherwise)."""
        def incompatible(info) -> None:
            self.stats.count('qos_incompatible')
            self.get_logger().warning(
                f'{topic}: a publisher offers QoS incompatible with this subscription '
                f'({info.last_policy_kind.name}); set qos.input.reliability to match the camera driver',
                throttle_duration_sec=5.0)
        return self.create_subscription(msg_type, topic, callback, qos,
                                        event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible))

    def _subscribe_images(self, stream: int, qos: QoSProfile):
        """
        Subscribe to one camera with its transport's type and topic.

        Callbacks only pair: a compressed frame stays compressed in the pairer and the mailbox and is
        decoded by the inference thread when it takes the pair, so a frame that is never fused
        (replaced in the mailbox, unpaired) never costs a decode.
        """
        name = STREAM_NAMES[stream]
        transport = self.get_parameter(f'{name}.transport').value
        msg_type = CompressedImage if transport == 'compressed' else Image
        return self._subscribe(msg_type, transport_topic(f'{name}/image', transport),
                               lambda m: self._guard(f'{name} callback', self._on_image, stream, m), qos)

    def _qos(self, which: str) -> QoSProfile:
        reliability = self.get_parameter(f'qos.{which}.reliability').value
        return QoSProfile(depth=self.get_parameter(f'qos.{which}.depth').value,
                          reliability=ReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort'
                          else ReliabilityPolicy.RELIABLE)

    # ---- callbacks: check stamps and pair only -----------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_image(self, stream: int, msg: Image) -> None:
        stamp = stamp_ns(msg)
        self.stats.frame_in(stream)
        pair = None
        with self._pair_lock:
            check = self._stamps.check(stream, stamp)
            if check.verdict is StampVerdict.JUMP:   # frames of the new time line survive, the old ones go
                self.pairer.reset(keep_near=stamp, within_ns=self._stamps.jump_threshold_ns)
            if check.verdict in (StampVerdict.ACCEPT, StampVerdict.JUMP):
                pair = self.pairer.add(stream, stamp, msg)
        name = STREAM_NAMES[stream]
        if check.verdict is StampVerdict.JUMP:
            self.stats.count('clock_jumps')
            self._log(self.get_logger().warning,
                      f'clock jump: {name} stamp went back {check.back_ns / 1e9:.3f} s; pairing and stamp tracking '
                      'restarted (bag loop, sim reset or camera clock glitch)')
        elif check.verdict is StampVerdict.LATE:
            self._skip(f'{name} frame late: stamp {check.back_ns / 1e6:.1f} ms older than the last one')
        elif check.verdict is StampVerdict.DUPLICATE:
            self._skip(f'{name} frame duplicated: same stamp as the last one')
        if pair is not None:
            self.stats.pair_formed()
            if self.mailbox.put(pair):
                self.stats.count('dropped')

    def _guard(self, what: str, callback, *args) -> None:
        """Run an executor callback so that no exception reaches spin (it would end the process)."""
        try:
            callback(*args)
        except Exception as err:
            reason = f'{what}: {type(err).__name__}: {clip(str(err))}'
            self.stats.failed(reason)
            self._log(self.get_logger().error, f'callback failed: {reason}')

    def _skip(self, reason: str, paired: bool = False) -> None:
        """Skip a frame or pair the input made unusable: count it, keep the reason for health, log it (throttled)."""
        self.stats.skipped(reason, paired)
        self._log(self.get_logger().warning, f'frame skipped: {reason}')

    def _log(self, log, line: str) -> None:
        """Log a line at most once per LOG_PERIOD_S per kind of line, saying how many of its kind were held back."""
        held = self._throttle.admit(reason_key(line))
        if held is not None:
            log(line + (f' ({held} more like this in the last {LOG_PERIOD_S:g} s)' if held else ''))

    # ---- inference thread -------------------------------------------------------------------
    def _inference_loop(self) -> None:
        while True:
            pair = self.mailbox.get(timeout=0.5)
            if pair is None:
                if self.mailbox.closed:
                    return
                continue
            self._process(*pair)

    def _on_worker_death(self, err: BaseException) -> None:
        """Say why the worker died, with the traceback (runs in the dying thread; the next tick restarts it)."""
        trace = ''.join(traceback.format_exception(type(err), err, err.__traceback__))
        self.get_logger().error(f'inference worker died: {type(err).__name__}: {clip(str(err))}\n{clip(trace, 4000)}')

    def _process(self, ir_msg: Image, vis_msg: Image) -> None:
        """Fuse and publish one pair; a ValueError is the input's fault (skipped), anything else a failure."""
        self.stats.busy(time.monotonic())
        try:
            self._fuse_and_publish(ir_msg, vis_msg)
        except CompressedImageError as err:   # before ValueError, its base: counted apart on /diagnostics
            self.stats.count('bad_payloads')
            self._skip(clip(str(err)), paired=True)
        except ValueError as err:
            self._skip(clip(str(err)), paired=True)
        except Exception as err:  # BackendError, cv2.error, RCLError on publish...: this pair is lost, not the node
            reason = f'{type(err).__name__}: {clip(str(err))}'
            self.stats.failed(reason)
            self._log(self.get_logger().error, f'frame failed: {reason}')
        finally:
            self.stats.busy(None)

    def _fuse_and_publish(self, ir_msg: Image, vis_msg: Image) -> None:
        started = time.perf_counter()
        ir = codec.to_mono(*self._decode(IR, ir_msg), *self.ir_units)
        vis = codec.to_bgr(*self._decode(VISIBLE, vis_msg))
        encoding, (alpha, palette) = self.output_encoding, self.mask_style
        inference_started = time.perf_counter()
        result = self.pipeline.fuse(ir, vis)
        inference_ms = (time.perf_counter() - inference_started) * 1000
        if result.fused_bgr.shape[:2] != vis.shape[:2]:
            self.stats.count('downscaled')
            (height, width), (out_h, out_w) = vis.shape[:2], result.fused_bgr.shape[:2]
            self._log(self.get_logger().warning, f'frame {width}x{height} is above max_input_pixels '
                      f'{self.pipeline.max_input_pixels}: fused at {out_w}x{out_h}')
        out = codec.from_bgr(result.fused_bgr, encoding)
        self._pubs['image'].publish(codec.array_to_image(out, encoding, header=vis_msg.header))
        self._publish_jpeg('image_jpeg', result.fused_bgr, vis_msg.header)
        if self._camera_info is not None:
            info = scaled_camera_info(self._camera_info, result.fused_bgr.shape[1], result.fused_bgr.shape[0])
            info.header = vis_msg.header
            self._pubs['info'].publish(info)
        if 'mask' in self._pubs and result.mask is not None:
            self._pubs['mask'].publish(codec.array_to_image(result.mask, 'mono8', header=vis_msg.header))
            ids = overlay_ids(result.mask, self.pipeline.card.mask.get('kind', 'classes'))
            overlay = colorize_mask(result.fused_bgr, ids, alpha, palette)
            self._pubs['mask_color'].publish(codec.array_to_image(overlay, 'bgr8', header=vis_msg.header))
            self._publish_jpeg('mask_color_jpeg', overlay, vis_msg.header)
        total_ms = (time.perf_counter() - started) * 1000
        self.stats.published(stamp_ns(vis_msg), self.get_clock().now().nanoseconds, total_ms - inference_ms)
        if self.alignment.due():   # after publishing: the score is advisory and must never cost the fused frame
            try:
                self.alignment.record(self._alignment_score(ir, vis))
            except Exception as err:  # advisory: say why, keep fusing
                self._log(self.get_logger().warning, f'alignment score failed: {type(err).__name__}: {clip(str(err))}')

    def _decode(self, stream: int, msg: Any) -> tuple[np.ndarray, str]:
        """Decode a raw or compressed frame (inference thread only); a bad payload's error names the stream."""
        try:
            return codec.message_to_array(msg)
        except CompressedImageError as err:
            raise CompressedImageError(f'{STREAM_NAMES[stream]}: {err}') from None

    def _alignment_score(self, ir: np.ndarray, vis: np.ndarray) -> float:
        """Score how well the registered IR frame's edges lie on the visible ones (registration.score_every)."""
        registration = self.pipeline.registration
        matrix = registration.matrix
        footprint = footprint_of(matrix, ir.shape, vis.shape) if matrix is not None else None
        return alignment_score(register_ir(ir, vis.shape, registration), vis, footprint)

    def _publish_jpeg(self, key: str, bgr: np.ndarray, header: Any) -> None:
        """
        Publish bgr as JPEG on a compressed output, if it exists and has a subscriber.

        The JPEG encode is the costly part of a compressed output (the `encode` stage at 1920x1080 in
        benchmarks/results/camera_rate.json), so it is skipped while nobody listens; the raw outputs
        are always published.
        """
        pub = self._pubs.get(key)
        if pub is not None and pub.get_subscription_count() > 0:
            pub.publish(codec.array_to_compressed(bgr, 'bgr8', self.jpeg_quality, header=header))

    # ---- diagnostics ------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        """Restart a dead worker, then publish health and counters."""
        if self.pipeline is None:
            return
        death = self._worker.restart_if_dead()
        if death:
            self.stats.worker_died(death)
            self.get_logger().error(f'inference worker restarted after it died ({death})')
        level, message = assess(self.stats.snapshot(self.pairer.stats.last_skew_ns), self._limits)
        drift = self.alignment.problem()
        if drift:
            message = drift if level == OK else f'{message}; {drift}'
            level = max(level, WARN)
        status = DiagnosticStatus(level=level, name=f'{self.get_name()}: fusion', message=message,
                                  hardware_id=self.pipeline.backend.describe())
        values = self.stats.report(self.pairer.stats)
        values['backend'] = self.pipeline.backend.describe()
        values['model'] = f'{self.pipeline.card.method} {self.pipeline.card.sha256[:12]}'
        values.update(self.alignment.report())
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def main(args: Optional[list[str]] = None) -> int:
    """
    Console script `fusion_node`; SIGINT and SIGTERM (docker stop, systemd) end it with exit status 0.

    rclpy's signal handler shuts the context down, which makes spin raise ExternalShutdownException:
    that is the normal way out, not an error. A failed autostart configure leaves the node up and
    unconfigured (the reason is logged), so the values can be fixed and configure triggered again.
    """
    rclpy.init(args=args)
    node = FusionNode()
    try:
        if node.get_parameter('autostart').value and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        node.get_logger().info('shutting down on a signal')
    finally:
        node.stop_worker()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
