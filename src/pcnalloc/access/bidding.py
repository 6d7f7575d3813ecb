"""I-to-2 bidding matching of devices to the two modes (Algorithm 1, eqs. (20)-(23)).

Every unmatched device asks for the mode with the higher preference value. A mode whose
requests fit its remaining places (J1 for PLC, J2 for 5G, C3-C4) takes them all; in an
over-asked mode every requester bids: its preference for that mode falls by its price
p = β·|γ| / (1 + Σ O·τ^que), so devices with a large virtual queue and queuing delay pay
little and keep their choice while the others turn to the other mode. ``|γ|`` and ``1 +``
keep the price positive and finite once γ turns negative (it starts at ρ) or the virtual
queue is empty; a small floor keeps every round a strict decrease, so bidding terminates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BiddingResult:
    """Modes (0 PLC, 1 5G), rounds played and whether the round cap forced the rest."""

    modes: np.ndarray
    rounds: int
    capped: bool


def bidding_prices(
    gamma: np.ndarray, oq: np.ndarray, beta: tuple[float, float], floor: float = 1e-3
) -> np.ndarray:
    """Prices of eqs. (20)-(21), ``(I, 2)``; ``oq`` is each device's Σ O·τ^que last epoch."""
    b = np.asarray(beta, dtype=float)[None, :]
    return b * np.maximum(np.abs(gamma), floor) / (1.0 + np.asarray(oq)[:, None])


def bid_modes(
    gamma: np.ndarray,
    price: np.ndarray,
    capacity: tuple[int, int],
    allowed: np.ndarray | None = None,
    max_rounds: int = 1000,
) -> BiddingResult:
    """Run the bidding; returns the modes, respecting the two capacities.

    Args:
        gamma: preference values (γ^PLC, γ^5G), ``(I, 2)``.
        price: bidding prices, ``(I, 2)`` (> 0).
        capacity: places of PLC and 5G (J1, J2); their sum must cover the devices.
        allowed: modes a device may take (a device without reliable subchannels in a mode
            never asks for it), ``(I, 2)`` bool; None allows both.
        max_rounds: after this many rounds the remaining devices are placed in order of
            their preference where places are left.
    """
    n = gamma.shape[0]
    if sum(capacity) < n:
        raise ValueError(f"{n} devices do not fit {capacity[0]} + {capacity[1]} mode places")
    pref = np.asarray(gamma, dtype=float).copy()
    if allowed is not None:
        ok = np.asarray(allowed, dtype=bool).copy()
        ok[~ok.any(axis=1)] = True
        pref[~ok] = -np.inf
    step = np.maximum(np.asarray(price, dtype=float), 1e-9)
    caps = [int(capacity[0]), int(capacity[1])]
    modes = np.full(n, -1, dtype=np.int64)
    open_ = np.ones(n, dtype=bool)
    rounds = 0
    while open_.any() and rounds < max_rounds:
        rounds += 1
        req = np.where(pref[:, 1] > pref[:, 0], 1, 0)
        for m in (0, 1):
            group = open_ & (req == m)
            k = int(group.sum())
            if k == 0:
                continue
            if k <= caps[m]:
                modes[group] = m
                caps[m] -= k
                open_[group] = False
            else:
                pref[group, m] -= step[group, m]
    capped = bool(open_.any())
    if capped:
        rest = np.flatnonzero(open_)
        best = np.maximum(pref[rest, 0], pref[rest, 1])
        for i in rest[np.argsort(-best, kind="stable")]:
            first = 1 if pref[i, 1] > pref[i, 0] else 0
            m = first if caps[first] > 0 else 1 - first
            modes[i] = m
            caps[m] -= 1
    return BiddingResult(modes, rounds, capped)
