"""fusion_node over real rclpy/DDS with image_transport's compressed topics: JPEG/16-bit PNG in, JPEG out."""

from pathlib import Path
import re

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from fusion_ros.core import compressed
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.ros import codec
from fusion_ros.ros.pairing import IR as IR_STREAM, VISIBLE
from tests.node_harness import harness_factory, IR, statuses, VIS, wait_for  # noqa: F401 (fixture)

REALTIME = Path(__file__).resolve().parent.parent / 'models' / 'realtime.onnx'
IR16 = IR.astype(np.uint16) * 257          # 16-bit counts whose full-range gain gives back IR exactly


def compressed_msg(array, encoding, codec_name, sec, frame_id, quality=95):
    """A sensor_msgs/CompressedImage of the array as image_transport's compressed publisher writes it."""
    text, payload = compressed.encode(array, encoding, codec_name, quality=quality)
    msg = CompressedImage(format=text, data=payload.tobytes())
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    return msg


def send_compressed(h, sec):
    h.pub_ir.publish(compressed_msg(IR16, 'mono16', 'png', sec, 'ir_cam'))
    h.pub_vis.publish(compressed_msg(VIS, 'bgr8', 'jpeg', sec, 'visible_cam'))


@pytest.fixture
def reference():
    """The fused frame of the uncompressed pair, through the same pipeline the node runs."""
    pipeline = FusionPipeline.from_model(REALTIME, threads=1)
    try:
        return pipeline.fuse(IR, VIS).fused_bgr
    finally:
        pipeline.close()


def test_compressed_in_and_out_match_raw_fusion_within_jpeg_error(harness_factory, reference):  # noqa: F811
    h = harness_factory(REALTIME, ir__transport='compressed', visible__transport='compressed',
                        output__compressed=True, output__jpeg_quality=90)
    raw = h.record(Image, 'fused/image')
    jpeg = h.record(CompressedImage, 'fused/image/compressed')
    h.start()
    send_compressed(h, 1)
    assert wait_for(lambda: raw and jpeg), 'no fused output from compressed input'
    fused = codec.image_to_array(raw[0])
    assert fused.shape == VIS.shape
    # the 16-bit PNG is lossless, the visible JPEG (quality 95) is the only loss
    assert np.abs(fused.astype(int) - reference.astype(int)).mean() < 2.0
    assert jpeg[0].format == 'bgr8; jpeg compressed bgr8'
    assert jpeg[0].header.stamp.sec == 1 and jpeg[0].header.frame_id == 'visible_cam'
    decoded, encoding = compressed.decode(jpeg[0].format, jpeg[0].data)
    assert encoding == 'bgr8' and decoded.shape == VIS.shape
    assert np.abs(decoded.astype(int) - fused.astype(int)).mean() < 3.0
    assert len(jpeg[0].data) < fused.nbytes / 5


def test_bad_payloads_are_counted_logged_and_fusion_goes_on(harness_factory):  # noqa: F811
    h = harness_factory(REALTIME, visible__transport='compressed', diagnostics_period=0.2)
    fused = h.record(Image, 'fused/image')
    diagnostics = h.record(DiagnosticArray, '/diagnostics')
    h.start()
    good = compressed_msg(VIS, 'bgr8', 'jpeg', 1, 'visible_cam')
    truncated = compressed_msg(VIS, 'bgr8', 'jpeg', 1, 'visible_cam')
    truncated.data = good.data[:len(good.data) // 3]
    for sec, bad in ((1, truncated), (2, compressed_msg(VIS, 'bgr8', 'jpeg', 2, 'visible_cam'))):
        if sec == 2:
            bad.format = 'h264'
        h.pub_ir.publish(_stamped(codec.array_to_image(IR, 'mono8'), sec))
        h.pub_vis.publish(bad)
        assert wait_for(lambda: h.node.stats.bad_payloads >= sec), f'bad payload {sec} not counted'
    good.header.stamp.sec = 3
    h.pub_ir.publish(_stamped(codec.array_to_image(IR, 'mono8'), 3))
    h.pub_vis.publish(good)
    assert wait_for(lambda: len(fused) == 1) and fused[0].header.stamp.sec == 3
    assert "visible: unsupported compressed format 'h264'" in h.node.stats.last_skip
    assert wait_for(lambda: any(kv.key == 'bad compressed payloads' and kv.value == '2'
                                for s in statuses(diagnostics) for kv in s.values))


def _stamped(msg, sec):
    msg.header.stamp.sec = sec
    return msg


def test_a_frame_the_mailbox_replaces_is_never_decoded(harness_factory):  # noqa: F811
    """Two pairs of undecodable payloads before the worker runs: only the one kept is decoded (and fails)."""
    h = harness_factory(REALTIME, ir__transport='compressed', visible__transport='compressed')
    assert h.node.trigger_configure().name == 'SUCCESS'
    for sec in (1, 2):                        # callbacks pair; the worker is not running yet
        for stream in (IR_STREAM, VISIBLE):
            h.node._on_image(stream, _stamped(CompressedImage(format='jpeg', data=b'\xff\xd8\xff garbage'), sec))
    assert h.node.stats.dropped == 1 and h.node.stats.bad_payloads == 0
    assert h.node.trigger_activate().name == 'SUCCESS'
    assert wait_for(lambda: h.node.stats.bad_payloads == 1)
    assert h.node.stats.skipped_pairs == 1
    assert re.match(r'(ir|visible): cannot decode JPEG payload of 11 bytes', h.node.stats.last_skip)


def test_mask_colour_overlay_has_its_compressed_twin(harness_factory, exported_seg):  # noqa: F811
    h = harness_factory(exported_seg[0], output__compressed=True, output__jpeg_quality=95)
    overlay = h.record(Image, 'fused/mask_color')
    jpeg = h.record(CompressedImage, 'fused/mask_color/compressed')
    h.start()
    h.send(IR, VIS, 5)
    assert wait_for(lambda: overlay and jpeg)
    assert jpeg[0].header.stamp.sec == 5 and jpeg[0].format == 'bgr8; jpeg compressed bgr8'
    decoded, _ = compressed.decode(jpeg[0].format, jpeg[0].data)
    assert np.abs(decoded.astype(int) - codec.image_to_array(overlay[0]).astype(int)).mean() < 3.0
