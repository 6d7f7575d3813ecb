"""Evaluation: seeded runner, the metrics schema, sweeps with confidence intervals, reports."""

from pcnalloc.evaluate.metrics import METRIC_KEYS, MetricsRecorder
from pcnalloc.evaluate.runner import env_config_for, run_policy

__all__ = ["METRIC_KEYS", "MetricsRecorder", "env_config_for", "run_policy"]
