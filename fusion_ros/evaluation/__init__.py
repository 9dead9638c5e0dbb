"""
Evaluation: fusion metrics, folder evaluation, target contrast, segmentation scores and report plots.

Nothing here imports rclpy or fusion_ros.ros (tests/test_layout.py checks it), so training reuses it.
"""
