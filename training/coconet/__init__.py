"""CoCoNet's own training: its losses and objectives, the gray VGG-19 it measures with, its released weights."""
