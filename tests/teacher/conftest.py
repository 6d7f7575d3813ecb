"""Fixtures of the teacher tests: a tiny fast env config and a small teacher config."""

from __future__ import annotations

import pytest
import torch

from pcnalloc.teacher import teacher_config

SMALL_NET = {"hidden": 16, "gnn_hidden": 8, "lstm_hidden": 8, "q_hidden": 16}


@pytest.fixture
def tiny_teacher_cfg(small_pool_graph_file):
    """A teacher config on the 6-site, 50 Mb/s graph without warm start or grid events."""

    def make(**over):
        base = dict(
            env={
                "network": {"case": str(small_pool_graph_file)},
                "traffic": {
                    "warm_start": False,
                    "events": {"faults_per_hour": 0.0, "fiber_cuts_per_hour": 0.0},
                },
                "episode_requests": 150,
            },
            steps=200,
            learning_starts=50,
            train_every=1,
            batch_size=16,
            buffer_size=1000,
            eval_every=0,
            checkpoint_every=100,
            log_every=50,
            **SMALL_NET,
        )
        base.update(over)
        return teacher_config(**base)

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: small tensors gain nothing from more, and a busy machine loses."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
