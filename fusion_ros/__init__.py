"""fusion_ros: infrared + visible image fusion for ROS 2, with a ROS-free, torch-free core."""

__version__ = '0.1.0'
