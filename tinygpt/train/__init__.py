"""Training: optimizer and schedule, checkpoints, evaluation and the loop."""
