"""Double-DQN teacher over the 128-d joint state (DESIGN §5); registers policy ``teacher``."""

from pcnalloc.baselines import register_policy
from pcnalloc.teacher.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    resolve_checkpoint,
)
from pcnalloc.teacher.config import TRAIN_SEED_BASE, TeacherConfig, teacher_config
from pcnalloc.teacher.dqn import DoubleDQN, double_dqn_target, epsilon_greedy, epsilon_greedy_batch
from pcnalloc.teacher.policy import TeacherPolicy, make_teacher
from pcnalloc.teacher.replay import ReplayBuffer
from pcnalloc.teacher.train import Trainer, TrainResult, train_teacher

register_policy("teacher", make_teacher)

__all__ = [
    "TRAIN_SEED_BASE",
    "CheckpointError",
    "DoubleDQN",
    "ReplayBuffer",
    "TeacherConfig",
    "TeacherPolicy",
    "TrainResult",
    "Trainer",
    "double_dqn_target",
    "epsilon_greedy",
    "epsilon_greedy_batch",
    "load_checkpoint",
    "make_teacher",
    "model_from_checkpoint",
    "resolve_checkpoint",
    "teacher_config",
    "train_teacher",
]
