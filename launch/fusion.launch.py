"""
Launch fusion_node with its parameters and the large-data Fast DDS profile.

    ros2 launch fusion_ros fusion.launch.py ir_topic:=/thermal/image_raw visible_topic:=/camera/image_raw
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode


def generate_launch_description() -> LaunchDescription:
    """Declare the usual remaps and start the node; defaults live in config/fusion.yaml only."""
    share = get_package_share_directory('fusion_ros')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config', 'fusion.yaml'),
                              description='YAML parameter file (/** key)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node and its topics'),
        DeclareLaunchArgument('ir_topic', default_value='ir/image', description='infrared image topic'),
        DeclareLaunchArgument('visible_topic', default_value='visible/image', description='visible image topic'),
        DeclareLaunchArgument('visible_info_topic', default_value='visible/camera_info',
                              description='visible CameraInfo topic'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock (bag replay)'),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               os.path.join(share, 'config', 'fastdds_large_data.xml')),
        LifecycleNode(
            package='fusion_ros', executable='fusion_node', name='fusion_node',
            namespace=LaunchConfiguration('namespace'), output='screen',
            parameters=[LaunchConfiguration('params_file'), {'use_sim_time': LaunchConfiguration('use_sim_time')}],
            remappings=[('ir/image', LaunchConfiguration('ir_topic')),
                        ('visible/image', LaunchConfiguration('visible_topic')),
                        ('visible/camera_info', LaunchConfiguration('visible_info_topic'))]),
    ])
