"""
Launch fusion_node with its parameters and the large-data Fast DDS profile.

    ros2 launch fusion_ros fusion.launch.py ir_topic:=/thermal/image_raw visible_topic:=/camera/image_raw
    ros2 launch fusion_ros fusion.launch.py visible_transport:=compressed output_compressed:=true \
        model_path:=/opt/models/realtime.onnx backend:=tensorrt
    ros2 launch fusion_ros fusion.launch.py registration_file:=rig.yaml   # from `fusion-ros calibrate`
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
import yaml

# Launch argument -> node parameter, for the settings users change on the command line. Left empty, an
# argument sets nothing, so the parameter file (config/fusion.yaml) stays the one place defaults live.
OVERRIDES = {
    'ir_transport': ('ir.transport', 'infrared input: raw (ir/image) | compressed (ir/image/compressed)'),
    'visible_transport': ('visible.transport', 'visible input: raw | compressed (visible/image/compressed)'),
    'output_compressed': ('output.compressed', 'true: also publish fused/image/compressed (JPEG)'),
    'model_path': ('model_path', 'ONNX model with its JSON card (models/realtime.onnx: the real-time student)'),
    'backend': ('backend', 'onnxruntime | tensorrt | torch'),
}


def _node(context) -> list:
    """Start the node with the parameter file plus the override arguments that were given, topics remapped."""
    overrides = {}
    for argument, (parameter, _) in OVERRIDES.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = yaml.safe_load(value)   # 'true' -> True, as a parameter file would read it
    remappings = [('visible/camera_info', LaunchConfiguration('visible_info_topic'))]
    for base, argument in (('ir/image', 'ir_topic'), ('visible/image', 'visible_topic')):
        topic = LaunchConfiguration(argument).perform(context)
        remappings += [(base, topic), (f'{base}/compressed', f'{topic}/compressed')]   # image_transport's name
    # The rig's calibration (fusion-ros calibrate) is layered over params_file: its registration.* win.
    registration_file = LaunchConfiguration('registration_file').perform(context)
    return [LifecycleNode(
        package='fusion_ros', executable='fusion_node', name='fusion_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        parameters=[LaunchConfiguration('params_file'), *([registration_file] if registration_file else []),
                    {'use_sim_time': LaunchConfiguration('use_sim_time')}, overrides],
        remappings=remappings)]


def generate_launch_description() -> LaunchDescription:
    """Declare the usual remaps and overrides and start the node; defaults live in config/fusion.yaml only."""
    share = get_package_share_directory('fusion_ros')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config', 'fusion.yaml'),
                              description='YAML parameter file (/** key)'),
        DeclareLaunchArgument('registration_file', default_value='',
                              description='rig.yaml from fusion-ros calibrate, layered over params_file'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node and its topics'),
        DeclareLaunchArgument('ir_topic', default_value='ir/image',
                              description='infrared image topic (the base topic with compressed transport)'),
        DeclareLaunchArgument('visible_topic', default_value='visible/image',
                              description='visible image topic (the base topic with compressed transport)'),
        DeclareLaunchArgument('visible_info_topic', default_value='visible/camera_info',
                              description='visible CameraInfo topic'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock (bag replay)'),
        *(DeclareLaunchArgument(argument, default_value='', description=f'{help_text} (empty: params_file)')
          for argument, (_, help_text) in OVERRIDES.items()),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               os.path.join(share, 'config', 'fastdds_large_data.xml')),
        OpaqueFunction(function=_node),
    ])
