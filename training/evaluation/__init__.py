"""Scoring exported models: a run's held-out pairs, the comparison of every shipped model, other fusion tasks."""
