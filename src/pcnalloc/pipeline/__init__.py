"""The main job: every stage from grid case to report, content-addressed and resumable."""

from pcnalloc.pipeline.config import RunConfig, load_run_config
from pcnalloc.pipeline.run import run_pipeline

__all__ = ["RunConfig", "load_run_config", "run_pipeline"]
