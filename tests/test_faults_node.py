"""
fusion_node under faults, in process over real rclpy and Fast DDS (issue 11).

Each test first reproduced its fault against the node as it was; most use a real ONNX graph that
costs nothing (fused = visible) so they measure the node and not inference.
"""

from rcl_interfaces.msg import Log
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from tests import node_harness
from tests.node_harness import identity_model, image_msg, IR, VIS, wait_for

harness_factory = node_harness.harness_factory   # the shared fixture


def stamps(fused):
    """Stamps (s) of the fused frames received so far."""
    return [m.header.stamp.sec for m in list(fused)]


def node_logs(h, text):
    """Start recording the node's /rosout lines that contain text; return the live list."""
    lines = []
    h.peer.create_subscription(Log, '/rosout', lambda m: text in m.msg and m.name.endswith('fusion_node')
                               and lines.append(m.msg), 100)
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
