"""Content-addressed stages: a stage reruns only when its inputs (config + upstream) change."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pcnalloc import __version__
from pcnalloc.fileio import write_json

log = logging.getLogger(__name__)
RECORD = "stage.json"


_CODE: list[str] = []


def code_hash() -> str:
    """SHA-256 of the package's own source files (``*.py`` and packaged YAML), computed once.

    Part of every stage key, so a changed simulator, learner or report reruns the stages
    instead of reusing results the old code produced (a hand-typed version would not)."""
    if not _CODE:
        root = Path(__file__).resolve().parents[1]
        h = hashlib.sha256()
        for f in sorted([*root.rglob("*.py"), *root.rglob("*.yaml")]):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _CODE.append(h.hexdigest())
    return _CODE[0]


def stage_key(name: str, material: Any) -> str:
    """sha256 over the stage name, its inputs (canonical JSON), the package version and the
    hash of the package's source (:func:`code_hash`)."""
    blob = json.dumps([name, __version__, code_hash(), material], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StageRunner:
    """Runs stages under ``out/<stage>/`` and records what each produced and how long it took.

    A stage whose ``stage.json`` names the same key is skipped (its recorded outputs are
    returned) unless ``force``; otherwise its folder is cleared first, so a stage never mixes
    files of two configurations. The record is written last: an interrupted stage reruns.
    """

    def __init__(self, out: Path, *, force: bool = False) -> None:
        self.out = out
        self.force = force
        self.timings: dict[str, dict[str, Any]] = {}

    def run(self, name: str, material: Any, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        key = stage_key(name, material)
        folder = self.out / name
        record = folder / RECORD
        if not self.force and record.is_file():
            try:
                done = json.loads(record.read_text())
            except ValueError:
                done = {}
            if done.get("key") == key:
                log.info("stage %s: up to date (%s), skipped", name, key)
                self.timings[name] = {"seconds": done.get("seconds"), "skipped": True}
                return dict(done.get("outputs", {}))
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        outputs = fn(folder)
        seconds = round(time.perf_counter() - t0, 2)
        write_json(record, {"stage": name, "key": key, "seconds": seconds, "outputs": outputs})
        self.timings[name] = {"seconds": seconds, "skipped": False}
        return outputs
