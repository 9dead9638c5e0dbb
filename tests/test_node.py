"""fusion_node in-process over real rclpy and Fast DDS (localhost only, random domain)."""

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.ros import codec
from tests.model_fixtures import fixed_size_model, threshold_mask_model
from tests import node_harness
from tests.node_harness import image_msg, IR, VIS, wait_for

harness_factory = node_harness.harness_factory   # the shared fixture


def test_fused_output_and_camera_info(harness_factory, exported):
    h = harness_factory(exported[0])
    fused = h.record(Image, 'fused/image')
    infos = h.record(CameraInfo, 'fused/camera_info')
    h.start()
    info = CameraInfo(width=1280, height=960, k=[1000.0, 0, 640, 0, 1000.0, 480, 0, 0, 1])
    info.header.frame_id = 'visible_cam'
    h.pub_info.publish(info)
    assert wait_for(lambda: h.node._camera_info is not None)
    h.send(IR, VIS, 2)
    assert wait_for(lambda: fused and infos)
    out = fused[0]
    assert (out.header.stamp.sec, out.header.frame_id) == (2, 'visible_cam')
    assert (out.encoding, out.height, out.width) == ('bgr8', 480, 640)
    expected = FusionPipeline.from_model(exported[0], threads=1).fuse(IR, VIS).fused_bgr
    np.testing.assert_array_equal(codec.image_to_array(out), expected)
    assert (infos[0].width, infos[0].height) == (640, 480)       # scaled to the published size
    assert infos[0].k[0] == pytest.approx(500.0) and infos[0].k[5] == pytest.approx(240.0)
    assert infos[0].header.stamp.sec == 2


def test_every_bad_input_is_skipped_and_the_node_keeps_fusing(harness_factory, exported):
    h = harness_factory(exported[0], registration__mode='none')
    fused = h.record(Image, 'fused/image')
    h.start()
    truncated = image_msg(VIS, 'bgr8', 1, 'visible_cam')
    truncated.data = truncated.data[:100]
    zero = image_msg(VIS, 'bgr8', 2, 'visible_cam')
    zero.height = 0
    unknown = image_msg(VIS, 'bgr8', 3, 'visible_cam')
    unknown.encoding = 'bgr16'       # a ROS encoding no camera input here decodes
    cases = [truncated, zero, unknown]
    for k, bad in enumerate(cases, start=1):
        h.pub_ir.publish(image_msg(IR, 'mono8', bad.header.stamp.sec, 'ir_cam'))
        h.pub_vis.publish(bad)
        assert wait_for(lambda: h.node.stats.rejected >= k), f'case {k} not rejected'
    h.send(IR[:-8], VIS, 4)                      # sizes differ and registration is none
    assert wait_for(lambda: h.node.stats.rejected >= 4)
    h.send(IR, VIS, 5)
    assert wait_for(lambda: len(fused) == 1)
    h.pub_ir.publish(image_msg(IR, 'mono8', 4, 'ir_cam', 500_000_000))     # 0.5 s back: a late frame
    assert wait_for(lambda: h.node.stats.rejected >= 5)
    h.send(IR, VIS, 6)
    assert wait_for(lambda: len(fused) == 2)
    assert [m.header.stamp.sec for m in fused] == [5, 6]


def test_failing_backend_call_does_not_kill_the_node(harness_factory, tmp_path):
    h = harness_factory(fixed_size_model(tmp_path))
    fused = h.record(Image, 'fused/image')
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()
    h.send(IR[:100, :80].copy(), VIS[:100, :80].copy(), 1)     # the graph only accepts 640x480
    assert wait_for(lambda: h.node.stats.inference_failures == 1)
    assert wait_for(lambda: any(s.level == b'\x02' for d in diagnostics for s in d.status))
    h.send(IR, VIS, 2)
    assert wait_for(lambda: fused)
    np.testing.assert_array_equal(codec.image_to_array(fused[0]), VIS)


def test_mask_outputs_follow_the_model_card(harness_factory, tmp_path):
    h = harness_factory(threshold_mask_model(tmp_path), mask__alpha=1.0, mask__palette=[0, 0, 0, 10, 20, 30])
    masks = h.record(Image, 'fused/mask')
    colours = h.record(Image, 'fused/mask_color')
    h.start()
    h.send(IR, VIS, 7)
    assert wait_for(lambda: masks and colours)
    assert (masks[0].encoding, colours[0].encoding) == ('mono8', 'bgr8')
    assert masks[0].header.stamp.sec == colours[0].header.stamp.sec == 7
    assert masks[0].header.frame_id == 'visible_cam'
    np.testing.assert_array_equal(codec.image_to_array(masks[0]), (IR > 127).astype(np.uint8))
    overlay = codec.image_to_array(colours[0])
    background = IR <= 127
    np.testing.assert_array_equal(overlay[background], VIS[background])
    assert (overlay[~background] == [10, 20, 30]).all()       # alpha 1: class 1 in its palette colour
    result = h.node.set_parameters([Parameter('mask.palette', value=[0, 0, 300])])[0]
    assert not result.successful and 'B, G, R triples' in result.reason


@pytest.mark.parametrize('model, kind', [('exported_sgfusion', 'saliency'), ('exported_seg', 'classes')])
def test_both_mask_models_publish_what_the_offline_pipeline_computes(harness_factory, request, model, kind):
    """SGFusion's saliency and SeAFusion's class map reach fused/mask bit for bit; the overlay follows the kind."""
    path = request.getfixturevalue(model)[0]
    expected = FusionPipeline.from_model(path, threads=1).fuse(IR, VIS)
    h = harness_factory(path, mask__alpha=1.0, mask__palette=[0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90])
    masks, colours = h.record(Image, 'fused/mask'), h.record(Image, 'fused/mask_color')
    h.start()
    h.send(IR, VIS, 3)
    assert wait_for(lambda: masks and colours, timeout=30)
    assert h.node.pipeline.card.mask['kind'] == kind
    mask = codec.image_to_array(masks[0])
    np.testing.assert_array_equal(mask, expected.mask)
    ids = (mask >= 128).astype(np.uint8) if kind == 'saliency' else mask
    palette = np.array([[0, 0, 0], [10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)
    overlay = codec.image_to_array(colours[0])
    np.testing.assert_array_equal(overlay[ids == 0], expected.fused_bgr[ids == 0])
    np.testing.assert_array_equal(overlay[ids > 0], palette[ids[ids > 0] % len(palette)])


def test_tensorrt_backend_builds_in_configure_and_fuses_like_onnxruntime(
        harness_factory, exported, tmp_path, monkeypatch):
    """The node's TensorRT path end to end; TensorRT itself is the test double (it cannot be installed here)."""
    from tests.trt_double import install_fakes
    trt, _ = install_fakes(monkeypatch)
    plan = tmp_path / 'node.engine'
    h = harness_factory(exported[0], backend='tensorrt', engine__path=str(plan), engine__profile_min=[64, 64],
                        engine__profile_opt=[480, 640], engine__profile_max=[512, 640], precision='fp32')
    fused = h.record(Image, 'fused/image')
    assert trt._builds == 0
    h.start()                                              # configure builds the plan, before any frame
    assert trt._builds == 1 and plan.is_file() and plan.with_name('node.engine.json').is_file()
    assert h.node.pipeline.backend.describe() == 'tensorrt:seafusion/uint8'
    h.send(IR, VIS, 4)
    assert wait_for(lambda: fused)
    expected = FusionPipeline.from_model(exported[0], threads=1).fuse(IR, VIS).fused_bgr
    np.testing.assert_array_equal(codec.image_to_array(fused[0]), expected)     # fp32: the same graph
    assert trt._builds == 1


def test_unavailable_backend_fails_configure_and_the_node_stays_up(harness_factory, exported):
    # Real behaviour of this machine: no TensorRT. Configure must fail with the reason, not crash the node.
    h = harness_factory(exported[0], backend='tensorrt')
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert h.node._state_machine.current_state[1] == 'unconfigured'


def test_no_mask_topics_without_a_mask_output(harness_factory, exported):
    h = harness_factory(exported[0])
    h.start()
    assert 'mask' not in h.node._pubs
    names = [pub.topic_name for pub in h.node.publishers]    # the node's own handles, not the DDS graph
    assert '/fused/image' in names and '/fused/mask' not in names and '/fused/mask_color' not in names


def test_diagnostics_warn_when_no_pair_forms(harness_factory, exported):
    h = harness_factory(exported[0], diagnostics_period=0.1, no_pair_warn_after=0.3)
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()
    h.pub_ir.publish(image_msg(IR, 'mono8', 10, 'ir_cam'))
    h.pub_vis.publish(image_msg(VIS, 'bgr8', 20, 'visible_cam'))    # 10 s apart: never pairs

    def warned():
        return any(s.level == b'\x01' and 'no IR/visible pair' in s.message for d in diagnostics for s in d.status)
    assert wait_for(warned)
    status = next(s for d in diagnostics for s in d.status if 'skew' in s.message)
    assert '-10000.0 ms' in status.message or '10000.0 ms' in status.message
    keys = {kv.key for kv in status.values}
    assert {'latency p95 (ms)', 'dropped (mailbox)', 'backend', 'model', 'skew histogram'} <= keys


def test_lifecycle_through_the_node_services(harness_factory, exported):
    h = harness_factory(exported[0])
    get = h.peer.create_client(GetState, '/fusion_node/get_state')
    change = h.peer.create_client(ChangeState, '/fusion_node/change_state')
    assert get.wait_for_service(timeout_sec=10) and change.wait_for_service(timeout_sec=10)

    def state():
        return get.call(GetState.Request(), timeout_sec=10).current_state.label

    def transition(tid):
        return change.call(ChangeState.Request(transition=Transition(id=tid)), timeout_sec=30).success

    assert state() == 'unconfigured' and h.node.pipeline is None
    assert transition(Transition.TRANSITION_CONFIGURE) and state() == 'inactive' and h.node.pipeline
    assert transition(Transition.TRANSITION_ACTIVATE) and state() == 'active' and len(h.node._subs) == 3
    assert transition(Transition.TRANSITION_DEACTIVATE) and state() == 'inactive' and not h.node._subs
    assert transition(Transition.TRANSITION_CLEANUP) and state() == 'unconfigured' and h.node.pipeline is None


def test_configure_fails_cleanly_on_a_missing_model(harness_factory, tmp_path):
    h = harness_factory(tmp_path / 'missing.onnx')
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert h.node.pipeline is None


def test_bad_parameters_are_rejected_with_a_reason(harness_factory, exported):
    h = harness_factory(exported[0])
    node = h.node
    result = node.set_parameters([Parameter('pairing.mode', value='exact')])[0]
    assert not result.successful and 'pairing.mode must be one of' in result.reason
    result = node.set_parameters([Parameter('registration.homography', value=[0.0] * 9)])[0]
    assert not result.successful and 'singular' in result.reason.lower()
    nan_h = [1.0, 0.0, float('nan'), 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    result = node.set_parameters([Parameter('registration.homography', value=nan_h)])[0]
    assert not result.successful and 'finite' in result.reason
    result = node.set_parameters([Parameter('pairing.slop', value=-1.0)])[0]
    assert not result.successful and 'pairing.slop out of range' in result.reason   # the descriptor's range
    result = node.set_parameters([Parameter('ir_gain.percentile_low', value=99.5)])[0]
    assert not result.successful and 'percentile_low must be below' in result.reason
    assert node.set_parameters([Parameter('pairing.slop', value=0.05)])[0].successful
    h.start()
    assert node.set_parameters([Parameter('output_encoding', value='mono8')])[0].successful
    assert node.output_encoding == 'mono8' and node.pairer.slop_ns == 50_000_000
    assert node.set_parameters([Parameter('pairing.mode', value='latest')])[0].successful
    fused = h.record(Image, 'fused/image')
    h.pub_ir.publish(image_msg(IR, 'mono8', 100, 'ir_cam'))
    h.pub_vis.publish(image_msg(VIS, 'bgr8', 900, 'visible_cam'))   # no common clock: still paired
    assert wait_for(lambda: fused)
    assert (fused[0].encoding, fused[0].header.stamp.sec) == ('mono8', 900)
