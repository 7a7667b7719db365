"""Compute targets: one backend module per kind behind one protocol."""
