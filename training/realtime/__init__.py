"""The real-time student: distillation from a fusion network (issue 13)."""
