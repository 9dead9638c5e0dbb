"""
The ROS shell: fusion_node and what only it uses (parameters, pairing, mailbox, worker, health, bags).

The node wires ROS topics, parameters and diagnostics to fusion_ros.core; the policies it relies on
(pairing, stamps, health) stay rclpy-free so they are tested without a ROS graph.
"""
