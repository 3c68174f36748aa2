"""Helpers of bench/run.py: one module per benchmark section, plus reporting and timing."""
