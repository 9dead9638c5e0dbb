"""ament_python package definition: installs the runtime package, its data files and console scripts."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'fusion_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.xml')),
        (f'share/{PACKAGE}/models', glob('models/*.onnx') + glob('models/*.json') + glob('models/*.pt')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='fusion_ros maintainers',
    maintainer_email='maintainers@fusion-ros.invalid',
    description='Infrared + visible image fusion for ROS 2',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            'fusion-ros = fusion_ros.cli.main:main',
            'fusion_node = fusion_ros.ros.node:main',
        ],
    },
)
