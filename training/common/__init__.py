"""What every method trains with: config, data, losses, objectives, the training loop, checkpoints and run logs."""
