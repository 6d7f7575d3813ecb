"""Constrained policy distillation of the teacher into small students (DESIGN §6).

Registers the policies ``student`` (raw argmax) and ``student-masked`` (argmax over valid
actions); both take ``checkpoint=<student.pt or distill folder>``.
"""

from pcnalloc.baselines import register_policy
from pcnalloc.distill.checkpoint import (
    STUDENT_FILE,
    StudentCheckpointError,
    load_student,
    save_student,
)
from pcnalloc.distill.config import DistillConfig, distill_config
from pcnalloc.distill.data import LibraryData
from pcnalloc.distill.loss import DistillLossError, LossTerms, distill_loss, teacher_log_probs
from pcnalloc.distill.metrics import DecisionStats, masked_argmax
from pcnalloc.distill.policy import StudentPolicy, make_masked_student_policy, make_student_policy
from pcnalloc.distill.students import (
    EDGE,
    EDGE_BUDGET_BYTES,
    LATENT,
    MLPStudent,
    make_student,
    student_from_config,
)
from pcnalloc.distill.trainer import DistillResult, evaluate_rows, train_student

register_policy("student", make_student_policy)
register_policy("student-masked", make_masked_student_policy)

__all__ = [
    "EDGE",
    "EDGE_BUDGET_BYTES",
    "LATENT",
    "STUDENT_FILE",
    "DecisionStats",
    "DistillConfig",
    "DistillLossError",
    "DistillResult",
    "LibraryData",
    "LossTerms",
    "MLPStudent",
    "StudentCheckpointError",
    "StudentPolicy",
    "distill_config",
    "distill_loss",
    "evaluate_rows",
    "load_student",
    "make_masked_student_policy",
    "make_student",
    "make_student_policy",
    "masked_argmax",
    "save_student",
    "student_from_config",
    "teacher_log_probs",
    "train_student",
]
