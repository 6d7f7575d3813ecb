"""The paper's two-layer matching and the simple references (all-PLC, all-5G, greedy).

``matching``: modes by I-to-2 bidding (Algorithm 1) on the preference values γ the model
keeps (eqs. (18)-(19)); subchannels by device-proposing deferred acceptance (Algorithm 2)
with ω_ij = 1/τ_ij (PLC) or 1/(τ_ij + α·C_ij) (5G) on the device side and
λ_i = O_i·τ^que_i on the subchannel side, ties to the larger backlog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pcnalloc.access.bidding import bid_modes, bidding_prices
from pcnalloc.access.matching import serial_dictatorship
from pcnalloc.access.policy import cap_modes, need_demand

if TYPE_CHECKING:
    from pcnalloc.access.model import AccessModel, SlotView


def device_scores(view: SlotView) -> np.ndarray:
    """ω_ij of eqs. (26), (28) per subchannel, with τ_ij = min(τ, (L+A)/R_ij)."""
    load = (view.backlog + view.arrival)[:, None]
    r = view.rates
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(r > 0, np.minimum(view.slot_s, load / np.where(r > 0, r, 1.0)), view.slot_s)
    cost = np.where(
        view.is_plc[None, :], 0.0, view.cost_per_bit * np.minimum(load, view.slot_s * r)
    )
    # 1/(τ + αC), plus a rate tie-break where τ is capped at the slot length
    return 1.0 / (tau + view.alpha * cost + 1e-12) + 1e-12 * r


def queue_priority(view: SlotView) -> np.ndarray:
    """λ_i = O_i·τ^que_i (eqs. (27), (29)), ties broken by the backlog L + A."""
    lam = view.o * view.tau_que
    load = view.backlog + view.arrival
    return lam + 1e-9 * load / (1.0 + load.max(initial=0.0))


def matching_allocate(view: SlotView, propose_to_need: bool = True) -> np.ndarray:
    """Algorithm 2 for both groups at once (a PLC device accepts only PLC subchannels)."""
    dev = device_scores(view)
    if propose_to_need:
        return serial_dictatorship(
            queue_priority(view),
            dev,
            view.acceptable,
            need_demand(view),
            need_bits=view.backlog + view.arrival,
            capacity_bits=view.slot_s * view.rates,
        )
    return serial_dictatorship(queue_priority(view), dev, view.acceptable, need_demand(view))


class MatchingPolicy:
    """The paper's algorithm: I-to-2 bidding for modes, deferred acceptance for subchannels."""

    name = "matching"

    def __init__(self) -> None:
        self.last_rounds = 0
        self.propose_to_need = True

    def reset(self, seed: int | None = None) -> None:
        self.last_rounds = 0

    def modes(self, model: AccessModel) -> np.ndarray:
        cfg = model.cfg
        self.propose_to_need = cfg.propose_to_need
        price = bidding_prices(
            model.gamma, model.epoch_oq, (cfg.bidding.beta_plc, cfg.bidding.beta_5g)
        )
        res = bid_modes(
            model.gamma,
            price,
            (cfg.plc_subchannels, cfg.g5_subchannels),
            allowed=model.reachable,
            max_rounds=cfg.bidding.max_rounds,
        )
        self.last_rounds = res.rounds
        return res.modes

    def allocate(self, view: SlotView) -> np.ndarray:
        return matching_allocate(view, self.propose_to_need)


class FixedModePolicy:
    """Everyone on one mode while its places last (the rest on the other, farthest first);
    subchannels by the same queue-aware deferred acceptance as ``matching``."""

    def __init__(self, mode: int) -> None:
        self.mode = mode
        self.name = "all-plc" if mode == 0 else "all-5g"

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset."""

    def modes(self, model: AccessModel) -> np.ndarray:
        cfg = model.cfg
        want = np.full(model.n, self.mode, dtype=np.int64)
        want[~model.reachable[:, self.mode]] = 1 - self.mode
        return cap_modes(
            want, model.expected_rate[:, self.mode], (cfg.plc_subchannels, cfg.g5_subchannels)
        )

    def allocate(self, view: SlotView) -> np.ndarray:
        return matching_allocate(view)


def greedy_allocate(view: SlotView, demand: np.ndarray, need: bool = True) -> np.ndarray:
    """Best rate first: walk the acceptable pairs by R_ij, take a pair while the subchannel is
    free, the device has quota left and (with ``need``) still has backlog to carry."""
    _n_dev, n_ch = view.rates.shape
    holder = np.full(n_ch, -1, dtype=np.int64)
    left = np.asarray(demand, dtype=np.int64).copy()
    bits = (view.backlog + view.arrival).astype(float)
    flat = np.flatnonzero(view.acceptable.ravel())
    if flat.size == 0:
        return holder
    r = view.rates.ravel()[flat]
    for f in flat[np.argsort(-r, kind="stable")]:
        i, j = divmod(int(f), n_ch)
        if holder[j] >= 0 or left[i] <= 0 or (need and bits[i] <= 0):
            continue
        holder[j] = i
        left[i] -= 1
        bits[i] -= view.slot_s * view.rates[i, j]
    return holder


class GreedyPolicy:
    """Mode with the better expected rate (capped), subchannels greedily by rate."""

    name = "greedy"

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset."""

    def modes(self, model: AccessModel) -> np.ndarray:
        cfg = model.cfg
        er = model.expected_rate
        want = (er[:, 1] > er[:, 0]).astype(np.int64)
        return cap_modes(want, er.max(axis=1), (cfg.plc_subchannels, cfg.g5_subchannels))

    def allocate(self, view: SlotView) -> np.ndarray:
        return greedy_allocate(view, need_demand(view))
