"""The paper's baselines: RAF (fireworks algorithm) and RAOM (one-to-many matching).

Both ignore the long-term queuing-delay constraint (no virtual queue in their decisions).
RAF (Liu et al., 2019) searches each slot's subchannel map with the fireworks algorithm for
the lowest Σ τ_i + α·C_i and has no large-timescale mode selection: a device's mode follows
from the subchannels it gets, slot by slot. RAOM (Yuan et al., 2019) fixes modes by expected
rate and matches subchannels one-to-many by rate on both sides, ignoring the traffic cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pcnalloc.access.matching import deferred_acceptance
from pcnalloc.access.policies import greedy_allocate
from pcnalloc.access.policy import cap_modes, need_demand

if TYPE_CHECKING:
    from pcnalloc.access.model import AccessModel, SlotView


def slot_objective(view: SlotView, holders: np.ndarray) -> np.ndarray:
    """Σ_i τ_i + α·C_i of each candidate map in ``holders`` ``(B, J)`` (lower is better)."""
    b, n_ch = holders.shape
    n_dev = view.rates.shape[0]
    used = holders >= 0
    rows = np.broadcast_to(np.arange(b)[:, None], holders.shape)[used]
    dev = holders[used]
    ch = np.broadcast_to(np.arange(n_ch)[None, :], holders.shape)[used]
    key = rows * n_dev + dev
    rate = np.bincount(key, weights=view.rates[dev, ch], minlength=b * n_dev).reshape(b, n_dev)
    rate5 = np.bincount(
        key, weights=view.rates[dev, ch] * ~view.is_plc[ch], minlength=b * n_dev
    ).reshape(b, n_dev)
    load = (view.backlog + view.arrival)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(
            rate > 0, np.minimum(view.slot_s, load / np.where(rate > 0, rate, 1.0)), view.slot_s
        )
    tau = np.where(load > 0, tau, 0.0)
    served = np.minimum(load, view.slot_s * rate)
    share5 = np.where(rate > 0, rate5 / np.where(rate > 0, rate, 1.0), 0.0)
    cost = view.cost_per_bit * served * share5
    return (tau + view.alpha * cost).sum(axis=1)


def repair(view: SlotView, holder: np.ndarray) -> np.ndarray:
    """Make a map feasible: acceptable pairs only, one mode per device (the mode of its best
    subchannel), at most q_m subchannels per device (its best ones)."""
    h = holder.copy()
    used = np.flatnonzero(h >= 0)
    bad = used[~view.acceptable[h[used], used]]
    h[bad] = -1
    used = np.flatnonzero(h >= 0)
    if used.size == 0:
        return h
    dev = h[used]
    r = view.rates[dev, used]
    order = np.lexsort((-r, dev))
    dev_o, ch_o = dev[order], used[order]
    first = np.r_[True, dev_o[1:] != dev_o[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(dev_o.size), 0))
    rank = np.arange(dev_o.size) - start
    mode_best = view.is_plc[ch_o[first]]
    group = np.cumsum(first) - 1
    keep = (rank < view.quota) & (view.is_plc[ch_o] == mode_best[group])
    h[ch_o[~keep]] = -1
    return h


class FireworksPolicy:
    """RAF: fireworks search per slot (n fireworks, sparks by fitness, Gaussian sparks).

    Args:
        fireworks: fireworks kept per iteration.
        sparks: explosion sparks per iteration, shared by fitness.
        iterations: explosions per slot.
        seed: seed of the search (reset re-seeds).
    """

    name = "raf"

    def __init__(
        self, fireworks: int = 5, sparks: int = 30, iterations: int = 10, seed: int = 0
    ) -> None:
        self.n_fw, self.n_sparks, self.iters = fireworks, sparks, iterations
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def modes(self, model: AccessModel) -> None:
        return None

    def _random(self, view: SlotView, count: int) -> np.ndarray:
        """Maps with each subchannel given to a random device that accepts it (or idle)."""
        n_dev, n_ch = view.rates.shape
        acc = view.acceptable & (view.backlog + view.arrival > 0)[:, None]
        ext = np.vstack([acc, np.ones((1, n_ch), dtype=bool)])  # last row: idle
        u = self.rng.random((count, n_dev + 1, n_ch)) * ext[None]
        pick = u.argmax(axis=1)
        return np.where(pick == n_dev, -1, pick).astype(np.int64)

    def allocate(self, view: SlotView) -> np.ndarray:
        n_ch = view.rates.shape[1]
        pool = self._random(view, 4 * self.n_fw)
        pool[0] = greedy_allocate(view, need_demand(view), need=False)
        pool = np.stack([repair(view, h) for h in pool])
        fit = slot_objective(view, pool)
        keep = np.argsort(fit)[: self.n_fw]
        fw, fw_fit = pool[keep], fit[keep]
        donor = self._random(view, 1)[0]
        for _ in range(self.iters):
            worst, best = fw_fit.max(), fw_fit.min()
            eps = 1e-12
            share = (worst - fw_fit + eps) / (worst - fw_fit + eps).sum()
            n_sp = np.maximum(1, np.round(self.n_sparks * share)).astype(int)
            amp = (fw_fit - best + eps) / (fw_fit - best + eps).sum()
            n_mut = np.clip(np.round(amp * n_ch / 2), 1, max(1, n_ch // 4)).astype(int)
            children = []
            for f in range(fw.shape[0]):
                for _s in range(n_sp[f]):
                    c = fw[f].copy()
                    pos = self.rng.choice(n_ch, size=n_mut[f], replace=False)
                    c[pos] = donor[pos] if self.rng.random() < 0.5 else -1
                    children.append(c)
                    donor = self._random(view, 1)[0] if self.rng.random() < 0.1 else donor
            g = fw[self.rng.integers(fw.shape[0])].copy()  # Gaussian spark: shift a block
            k = int(abs(self.rng.normal(0, n_ch / 8))) + 1
            pos = self.rng.choice(n_ch, size=min(k, n_ch), replace=False)
            g[pos] = donor[pos]
            children.append(g)
            cand = np.stack([repair(view, c) for c in children])
            allc = np.concatenate([fw, cand])
            allf = np.concatenate([fw_fit, slot_objective(view, cand)])
            b = int(np.argmin(allf))
            rest = np.delete(np.arange(allc.shape[0]), b)
            pick = np.r_[
                b, self.rng.choice(rest, size=min(self.n_fw - 1, rest.size), replace=False)
            ]
            fw, fw_fit = allc[pick], allf[pick]
        return fw[int(np.argmin(fw_fit))]


class RaomPolicy:
    """RAOM: modes by expected rate (capped), one-to-many matching of subchannels by rate."""

    name = "raom"

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset."""

    def modes(self, model: AccessModel) -> np.ndarray:
        cfg = model.cfg
        er = model.expected_rate
        want = (er[:, 1] > er[:, 0]).astype(np.int64)
        return cap_modes(want, er.max(axis=1), (cfg.plc_subchannels, cfg.g5_subchannels))

    def allocate(self, view: SlotView) -> np.ndarray:
        return deferred_acceptance(view.rates, view.rates, view.acceptable, need_demand(view))
