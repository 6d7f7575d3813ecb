"""``pcnalloc access train``: teacher → library → student in one folder, whole or not at all.

Layout of the folder: ``teacher.pt`` (per-device double DQN, :mod:`.teacher`),
``library/`` (trajectory library, :mod:`.library`), ``student/`` (``student.pt``,
``history.csv``, ``curves.png`` from :func:`pcnalloc.distill.train_student`) and
``train.json`` (configs, teacher log, library manifest, distillation summary, timings).
``learned@FOLDER`` then plays the student, ``teacher@FOLDER`` the teacher.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pcnalloc.access.config import AccessConfig
from pcnalloc.twolayer.learned import STUDENT_DIR, TEACHER_FILE
from pcnalloc.twolayer.teacher import AccessTeacherConfig


def train_pipeline(
    out: str | Path,
    env_config: AccessConfig,
    teacher_cfg: AccessTeacherConfig,
    *,
    library_episodes: int = 40,
    library_epsilon: float = 0.05,
    distill: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_teacher: Callable[[dict[str, Any]], None] | None = None,
    on_library: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the three stages into ``out`` (staged: a failure leaves no partial folder).

    Raises:
        OutputPathError: ``out`` exists without ``overwrite``.
    """
    from pcnalloc.fileio import staged_dir, write_json
    from pcnalloc.twolayer.library import build_access_library, distill_access_student
    from pcnalloc.twolayer.teacher import save_teacher, train_access_teacher

    with staged_dir(out, overwrite=overwrite) as tmp:
        t0 = time.perf_counter()
        net, log = train_access_teacher(env_config, teacher_cfg, progress=on_teacher)
        t_teacher = time.perf_counter() - t0
        sha = save_teacher(tmp / TEACHER_FILE, net, cfg=teacher_cfg, env_config=env_config, log=log)
        t0 = time.perf_counter()
        manifest = build_access_library(
            tmp / TEACHER_FILE,
            env_config,
            tmp / "library",
            episodes=library_episodes,
            epsilon=library_epsilon,
            seed=teacher_cfg.seed,
            progress=on_library,
        )
        t_library = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = distill_access_student(tmp / "library", tmp / STUDENT_DIR, **(distill or {}))
        t_distill = time.perf_counter() - t0
        report = {
            "access_config": env_config.model_dump(mode="json"),
            "teacher_config": teacher_cfg.model_dump(mode="json"),
            "teacher_sha256": sha,
            "teacher_log": log,
            "library": {k: v for k, v in manifest.items() if k != "access_config"},
            "student": summary,
            "seconds": {"teacher": t_teacher, "library": t_library, "distill": t_distill},
        }
        write_json(tmp / "train.json", report)
    return report


__all__ = ["train_pipeline"]
