"""
The ROS-free core: the fusion pipeline (pre -> backend -> post), registration, colour, image files, model cards.

Nothing here imports rclpy or fusion_ros.ros (tests/test_layout.py checks it): the node, the folder
command line and bag replay all call this one pipeline.
"""
