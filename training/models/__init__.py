"""Fusion networks of the source papers, rebuilt from methods.md."""
