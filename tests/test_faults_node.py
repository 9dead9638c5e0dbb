"""
fusion_node under faults, in process over real rclpy and Fast DDS (issue 11).

Each test first reproduced its fault against the node as it was; most use a real ONNX graph that
costs nothing (fused = visible) so they measure the node and not inference.
"""

import gc
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_rosout_default
from sensor_msgs.msg import CameraInfo, Image

from fusion_ros.core.pipeline import fit_pixels
from fusion_ros.ros import codec

from tests import node_harness
from tests.model_fixtures import write_tiny_model
from tests.node_harness import ERROR, Harness, identity_model, image_msg, IR, statuses, VIS, wait_for, WARN

harness_factory = node_harness.harness_factory   # the shared fixture


def stamps(fused):
    """Stamps (s) of the fused frames received so far."""
    return [m.header.stamp.sec for m in list(fused)]


def node_logs(h, text):
    """Start recording the node's /rosout lines that contain text; return the live list."""
    lines = []
    # /rosout keeps each node's last lines for 10 s (transient local): a reader with the same QoS gets
    # the lines logged before DDS matched it, which a volatile reader lost on a loaded machine
    name = h.node.get_logger().name
    h.peer.create_subscription(Log, '/rosout', lambda m: text in m.msg and m.name == name and lines.append(m.msg),
                               qos_profile_rosout_default)
    return lines


def test_a_far_future_stamp_costs_one_reset_not_every_later_frame(harness_factory, tmp_path):
    """F1: one IR frame an hour ahead (camera clock glitch) used to make every later IR frame 'go backwards'."""
    h = harness_factory(identity_model(tmp_path))
    fused = h.record(Image, 'fused/image')
    jumps = node_logs(h, 'clock jump')
    h.start()
    h.send(IR, VIS, 100)
    assert wait_for(lambda: len(fused) == 1)
    h.pub_ir.publish(image_msg(IR, 'mono8', 100 + 3600, 'ir_cam'))
    assert wait_for(lambda: h.node.stats.frames_received[0] == 2)
    for sec in (101, 102):
        h.send(IR, VIS, sec)
        assert wait_for(lambda: stamps(fused)[-1:] == [sec]), f'pair {sec} not fused after the glitch'
    assert wait_for(lambda: len(jumps) == 1)
    assert 'ir' in jumps[0] and '3599' in jumps[0]


def test_a_bag_loop_resets_pairing_with_one_warning_and_late_frames_are_skipped(harness_factory, tmp_path):
    """F1: a backward jump beyond pairing.clock_jump_threshold restarts stamp tracking; a small one is a late frame."""
    h = harness_factory(identity_model(tmp_path), pairing__clock_jump_threshold=1.0)
    fused = h.record(Image, 'fused/image')
    jumps = node_logs(h, 'clock jump')
    h.start()
    for sec in (50, 51):
        h.send(IR, VIS, sec)
        assert wait_for(lambda: stamps(fused)[-1:] == [sec])
    h.send(IR, VIS, 50, nanosec=500_000_000)          # 0.5 s back: reordered, not a clock jump
    assert wait_for(lambda: h.node.stats.rejected == 2)
    assert len(fused) == 2
    for sec in (3, 4):                                  # the bag starts again: both streams jump back 48 s
        h.send(IR, VIS, sec)
        assert wait_for(lambda: stamps(fused)[-1:] == [sec]), f'pair {sec} not fused after the loop'
    assert stamps(fused) == [50, 51, 3, 4]
    assert h.node.stats.clock_jumps == 1
    assert wait_for(lambda: jumps) and len(jumps) == 1


def test_cleanup_and_configure_forget_the_last_stamps(harness_factory, tmp_path):
    """F1: a re-configured node starts stamp tracking afresh (the old _last_stamp survived cleanup)."""
    h = harness_factory(identity_model(tmp_path), pairing__clock_jump_threshold=100.0)
    fused = h.record(Image, 'fused/image')
    h.start()
    h.send(IR, VIS, 90)
    assert wait_for(lambda: len(fused) == 1)
    h.node.trigger_deactivate()
    h.node.trigger_cleanup()
    h.start()
    h.send(IR, VIS, 10)                                 # 80 s back, below the threshold: new session, still fused
    assert wait_for(lambda: len(fused) == 2)


HUGE_H = [1e103, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_an_overflowing_homography_is_rejected_with_a_reason(harness_factory, tmp_path):
    """F2: validating [1e103, ...] raised OverflowError out of the parameter callback and killed the process."""
    h = harness_factory(identity_model(tmp_path))
    fused = h.record(Image, 'fused/image')
    h.start()
    result = h.node.set_parameters([Parameter('registration.homography', value=HUGE_H)])[0]
    assert not result.successful and 'homography' in result.reason
    assert h.node.get_parameter('registration.homography').value != HUGE_H
    h.send(IR, VIS, 1)
    assert wait_for(lambda: fused)


def test_a_bad_value_at_start_up_fails_configure_with_the_reason_and_can_be_fixed(harness_factory, tmp_path):
    """F2: the same value in the params file left the node unconfigured without a word; a range error crashed it."""
    h = harness_factory(identity_model(tmp_path), registration__mode='homography', registration__homography=HUGE_H,
                        pairing__slop=-1.0)
    errors = node_logs(h, 'configure failed')
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert wait_for(lambda: errors)
    assert 'registration.homography' in errors[0] and 'pairing.slop' in errors[0]
    assert h.node.set_parameters([Parameter('pairing.slop', value=0.02)])[0].successful
    scale_2 = [2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0]
    assert h.node.set_parameters([Parameter('registration.homography', value=scale_2)])[0].successful
    fused = h.record(Image, 'fused/image')
    h.start()
    h.send(IR, VIS, 1)
    assert wait_for(lambda: fused)


def test_an_empty_fixed_ir_range_is_rejected(harness_factory, tmp_path):
    """F4: ir_gain.low >= ir_gain.high was accepted, and then every frame was skipped."""
    h = harness_factory(identity_model(tmp_path))
    assert h.node.set_parameters([Parameter('ir_gain.high', value=1000.0)])[0].successful
    for low in (1000.0, 1500.0):
        result = h.node.set_parameters([Parameter('ir_gain.low', value=low)])[0]
        assert not result.successful and 'ir_gain.low must be below ir_gain.high' in result.reason
    assert h.node.get_parameter('ir_gain.low').value == 0.0
    result = h.node.set_parameters_atomically([Parameter('ir_gain.low', value=900.0),
                                               Parameter('ir_gain.high', value=800.0)])
    assert not result.successful and h.node.get_parameter('ir_gain.high').value == 1000.0


def two_channel_model(folder):
    """A broken export: fused_bgr has 2 channels. rgb8 output then fails in OpenCV (cv2.error, not ValueError)."""
    from onnx import helper, TensorProto

    def const(name, value):
        return helper.make_node('Constant', [], [name], value=helper.make_tensor(name, TensorProto.INT64, [1], [value]))
    return write_tiny_model(folder, 'two_channel', helper.make_node('Slice', ['visible_bgr', 's', 'e', 'a'],
                                                                    ['fused_bgr']),
                            [const('s', 0), const('e', 2), const('a', 2)])


def diagnostic(diagnostics, level, text):
    """Whether a status of that level containing text has been received."""
    return any(s.level == level and text in s.message for s in statuses(diagnostics))


def test_any_exception_in_a_frame_is_counted_and_the_worker_goes_on(harness_factory, tmp_path):
    """F5: a cv2.error (not ValueError / BackendError) killed the inference thread; /diagnostics stayed OK."""
    h = harness_factory(two_channel_model(tmp_path), output_encoding='rgb8', diagnostics_period=0.1)
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()
    for sec in (1, 2):
        h.send(IR, VIS, sec)
        assert wait_for(lambda: h.node.stats.inference_failures == sec), f'pair {sec} was not processed'
    assert wait_for(lambda: diagnostic(diagnostics, ERROR, 'error'))
    assert h.node.stats.worker_restarts == 0


class WorkerKilled(BaseException):
    """Not an Exception: the one kind of fault the per-frame handler lets through."""


def test_a_dead_worker_is_restarted_with_an_error_diagnostic(harness_factory, tmp_path):
    """
    F5 / health: whatever ends the inference thread, it is restarted and /diagnostics says ERROR.

    Once every Exception is handled per frame no real input can end the thread, so this test injects
    the remaining kind (a BaseException) into the pipeline call once; everything else is real.
    """
    h = harness_factory(identity_model(tmp_path), diagnostics_period=0.1)
    fused = h.record(Image, 'fused/image')
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()
    real_fuse = h.node.pipeline.fuse
    calls = []

    def dies_once(ir, vis):
        calls.append(1)
        if len(calls) == 1:
            raise WorkerKilled('injected')
        return real_fuse(ir, vis)
    h.node.pipeline.fuse = dies_once
    h.send(IR, VIS, 1)
    assert wait_for(lambda: h.node.stats.worker_restarts == 1)
    assert wait_for(lambda: diagnostic(diagnostics, ERROR, 'inference worker died (WorkerKilled: injected)'))
    h.send(IR, VIS, 2)
    assert wait_for(lambda: stamps(fused) == [2])


def test_no_output_while_pairs_arrive_is_an_error_naming_the_skip_reason(harness_factory, tmp_path):
    """F4 / health: ir_gain.low 300 with 8-bit IR skipped every pair while /diagnostics said OK."""
    h = harness_factory(identity_model(tmp_path), ir_gain__low=300.0, diagnostics_period=0.1,
                        no_output_error_after=0.5)
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()
    deadline = time.monotonic() + 20
    sec = 0
    while not diagnostic(diagnostics, ERROR, 'no fused frame published') and time.monotonic() < deadline:
        sec += 1
        h.send(IR, VIS, sec)
        time.sleep(0.1)
    status = next(s for s in statuses(diagnostics) if 'no fused frame published' in s.message)
    assert 'low end 300 is not below 255' in status.message


def test_a_stopped_stream_warns_with_its_age_and_rates_decay_to_zero(harness_factory, tmp_path):
    """Health: a stream that stops is named with its age; rates fall to 0 instead of keeping their last value."""
    # the visible stream goes on every 50 ms: a 2 s threshold keeps a loaded CI machine's scheduling
    # stalls from reading as a stopped stream (0.5 s did once)
    h = harness_factory(identity_model(tmp_path), diagnostics_period=0.2, stream_warn_after=2.0)
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()
    for sec in range(1, 6):
        h.send(IR, VIS, sec)
        time.sleep(0.05)
    sec = 6
    while not diagnostic(diagnostics, WARN, 'ir stream stopped'):      # visible goes on alone
        h.pub_vis.publish(image_msg(VIS, 'bgr8', sec, 'visible_cam'))
        sec += 1
        time.sleep(0.05)
        assert sec < 400, 'no WARN for the stopped IR stream'
    assert not diagnostic(diagnostics, WARN, 'visible stream stopped')
    assert wait_for(lambda: diagnostic(diagnostics, WARN, 'visible stream stopped'))   # now both stopped

    def rates():
        status = statuses(diagnostics)[-1]
        return {kv.key: kv.value for kv in status.values if 'rate' in kv.key}
    assert wait_for(lambda: set(rates().values()) == {'0.0'}, timeout=10)


def test_each_skip_reason_is_logged_and_long_encodings_are_cut(harness_factory, tmp_path):
    """Smaller problems: one throttle hid every reason but the first; a 1000-character encoding was echoed whole."""
    h = harness_factory(identity_model(tmp_path))
    skipped = node_logs(h, 'frame skipped')
    h.start()
    long_encoding = image_msg(VIS, 'bgr8', 1, 'visible_cam')
    long_encoding.encoding = 'x' * 1000
    zero = image_msg(VIS, 'bgr8', 2, 'visible_cam')
    zero.height = 0
    for count, bad in enumerate((long_encoding, zero), start=1):
        h.pub_ir.publish(image_msg(IR, 'mono8', bad.header.stamp.sec, 'ir_cam'))
        h.pub_vis.publish(bad)
        # Both are refused by the inference thread; a second pair sent before it took the first would
        # replace it in the one-slot mailbox (a drop, by design), so each waits for its own line.
        assert wait_for(lambda: len(skipped) == count), skipped
    h.pub_ir.publish(image_msg(IR, 'mono8', 2, 'ir_cam'))                # a duplicate stamp
    assert wait_for(lambda: len(skipped) == 3), skipped
    assert any('unsupported image encoding' in line and '(1000 characters)' in line for line in skipped)
    assert all(len(line) < 400 for line in skipped)


def test_an_old_node_collected_late_does_not_silence_the_new_one(harness_factory, tmp_path):
    """
    CI failure: a destroyed fusion_node freed later by the garbage collector took the /rosout publisher.

    rcl keeps one /rosout publisher per logger name; an earlier node's lifecycle state machine, left to
    the collector, unregistered 'fusion_node' when collected, and the current node's log lines vanished.
    The collector is paused so that the old node is freed exactly while the new one runs.
    """
    gc.disable()
    try:
        old = Harness(identity_model(tmp_path))
        old.close()
        h = harness_factory(identity_model(tmp_path))
        skipped = node_logs(h, 'frame skipped')
        h.start()
        del old
        gc.collect()
    finally:
        gc.enable()
    h.pub_ir.publish(image_msg(IR, 'mono8', 1, 'ir_cam'))
    h.pub_ir.publish(image_msg(IR, 'mono8', 1, 'ir_cam'))                # a duplicate stamp
    assert wait_for(lambda: len(skipped) == 1), 'the log line never reached /rosout'


def test_a_duplicated_pair_gives_one_output(harness_factory, tmp_path):
    """Smaller problem: the same pair delivered twice gave two fused frames with the same stamp."""
    h = harness_factory(identity_model(tmp_path))
    fused = h.record(Image, 'fused/image')
    h.start()
    h.send(IR, VIS, 7)
    h.send(IR, VIS, 7)
    h.send(IR, VIS, 8)
    assert wait_for(lambda: stamps(fused)[-1:] == [8])
    assert stamps(fused) == [7, 8]


def test_pairs_above_max_input_pixels_are_fused_downscaled_with_matching_camera_info(harness_factory, tmp_path):
    """F3: frames above max_input_pixels are downscaled (aspect kept) before inference; CameraInfo follows."""
    h = harness_factory(identity_model(tmp_path), max_input_pixels=65536)
    fused, infos = h.record(Image, 'fused/image'), h.record(CameraInfo, 'fused/camera_info')
    h.start()
    info = CameraInfo(width=640, height=480, k=[500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0])
    h.pub_info.publish(info)
    assert wait_for(lambda: h.node._camera_info is not None)
    h.send(IR, VIS, 1)
    assert wait_for(lambda: fused and infos)
    out = fused[0]
    assert (out.width, out.height) == (295, 221) and out.width * out.height <= 65536
    expected = cv2.resize(VIS, (295, 221), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(codec.image_to_array(out), expected)
    assert (infos[0].width, infos[0].height) == (295, 221) and infos[0].k[2] == pytest.approx(320 * 295 / 640)
    assert h.node.stats.downscaled == 1


@pytest.mark.parametrize('shape, limit, expected', [((480, 640), 65536, (221, 295)), ((1440, 2560), 2073600,
                                                    (1080, 1920)), ((480, 640), 307200, (480, 640)),
                                                    ((1, 100000), 65536, (1, 65536)),
                                                    ((100000, 1), 65536, (65536, 1))])
def test_fit_pixels_keeps_the_aspect_and_the_limit(shape, limit, expected):
    ir, vis = np.zeros(shape, np.uint8), np.zeros((*shape, 3), np.uint8)
    small_ir, small_vis = fit_pixels(ir, vis, limit)
    assert small_ir.shape == expected and small_vis.shape == (*expected, 3)
    assert small_ir.size <= limit


def test_an_exception_in_a_subscription_callback_does_not_end_spin(harness_factory, tmp_path):
    """
    An exception that reaches rclpy's executor ends spin, and with it the process.

    No real input makes the pairing callback raise, so this injects one fault into it (once); the node
    must count it and go on fusing.
    """
    h = harness_factory(identity_model(tmp_path))
    fused = h.record(Image, 'fused/image')
    h.start()
    real_add = h.node.pairer.add
    calls = []

    def fails_once(stream, stamp, item):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError('injected')
        return real_add(stream, stamp, item)
    h.node.pairer.add = fails_once
    h.send(IR, VIS, 1)
    assert wait_for(lambda: h.node.stats.inference_failures == 1)
    assert 'injected' in h.node.stats.last_failure
    h.send(IR, VIS, 2)
    assert wait_for(lambda: stamps(fused) == [2])
