"""Offline training, export and engine builds for the fusion_ros models (PyTorch)."""
