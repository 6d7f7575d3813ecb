"""Ranges of seeds and counts, shared by the configs and the command line.

A value outside is refused in one line naming the field or flag and its range, before any
work: a seed past what numpy/torch take (seeds are offset per episode, so the cap leaves
room) would overflow a C long deep inside a run, and a count of 10^10 would allocate until
memory runs out or run for days.
"""

from __future__ import annotations

SEED_MAX = 2**32 - 1
"""Largest seed (``numpy.random.RandomState``'s bound; episode offsets stay below 2^63)."""
REQUESTS_MAX = 10_000_000
"""Decisions per episode or run."""
STEPS_MAX = 1_000_000_000
"""Environment steps of a training."""
EPISODES_MAX = 1_000_000
"""Episodes of a training or a library."""
EPOCHS_MAX = 100_000
"""Epochs of a distillation (or access epochs V of an episode)."""
SEEDS_MAX = 100_000
"""How many evaluation seeds (0..N-1) a sweep may take."""
WORKERS_MAX = 1024
"""Worker processes or lock-step environments."""
ROWS_MAX = 10_000_000
"""Rows sampled from a library (parity checks)."""
COUNT_MAX = 1_000_000
"""Other sizes: sub-channels, bidding rounds."""
