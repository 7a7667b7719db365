"""Runs: Run, Experiment, configurations, the supervisor and the job executor."""
