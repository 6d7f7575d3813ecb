"""Seed ranges and batch sizes of the stages that the command line needs at start.

Kept apart from the stage modules (which load the environment, grid and torch code) so a
verb's option can take its default from here; the stage imports the same constant.
"""

from __future__ import annotations

LIBRARY_SEED_BASE = 200_000
"""First env seed of library episodes (episode i of a case and load plays ``base + i``):
disjoint from training seeds (≥ 1,000,000) and the usual evaluation seeds (< 100,000)."""

LIBRARY_LOCKSTEP = 8
"""Library episodes per task, stepped together so the teacher scores them in one batch."""
