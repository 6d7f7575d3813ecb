"""Many-to-many deferred acceptance between devices (quota) and subchannels (one device each).

Devices propose to their most preferred acceptable subchannels (Algorithm 2, Step 1); a
subchannel keeps the proposer it ranks highest and rejects the rest (Steps 2-3); rejected
devices propose further down their partial lists (Step 4). :func:`deferred_acceptance` is
the general algorithm (any two-sided scores); :func:`serial_dictatorship` is its fast path
when every subchannel ranks devices the same way (the paper's λ_ij = O_i·τ^que_i does not
depend on j), where the device-proposing stable matching is the serial dictatorship in that
order.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def deferred_acceptance(
    dev_score: np.ndarray, ch_score: np.ndarray, acceptable: np.ndarray, demand: np.ndarray
) -> np.ndarray:
    """Device-proposing deferred acceptance; returns ``holder[j]`` (device or −1).

    Args:
        dev_score: ω_ij, higher = device i prefers subchannel j more, ``(I, J)``.
        ch_score: λ_ij, higher = subchannel j prefers device i more, ``(I, J)``.
        acceptable: pairs allowed by C7 and the device's mode, ``(I, J)``.
        demand: most subchannels each device takes (≤ q_m), ``(I,)``.
    """
    n_dev, n_ch = dev_score.shape
    holder = np.full(n_ch, -1, dtype=np.int64)
    order = np.argsort(-np.where(acceptable, dev_score, -np.inf), axis=1, kind="stable")
    n_acc = acceptable.sum(axis=1)
    nxt = np.zeros(n_dev, dtype=np.int64)
    held = np.zeros(n_dev, dtype=np.int64)
    want = np.asarray(demand, dtype=np.int64)
    queue = deque(int(i) for i in range(n_dev) if want[i] > 0 and n_acc[i] > 0)
    while queue:
        i = queue.popleft()
        row = order[i]
        while held[i] < want[i] and nxt[i] < n_acc[i]:
            j = int(row[nxt[i]])
            nxt[i] += 1
            k = int(holder[j])
            if k < 0:
                holder[j] = i
                held[i] += 1
            elif ch_score[i, j] > ch_score[k, j]:
                holder[j] = i
                held[i] += 1
                held[k] -= 1
                queue.append(k)
    return holder


def serial_dictatorship(
    priority: np.ndarray,
    dev_score: np.ndarray,
    acceptable: np.ndarray,
    demand: np.ndarray,
    need_bits: np.ndarray | None = None,
    capacity_bits: np.ndarray | None = None,
) -> np.ndarray:
    """Stable matching when all subchannels rank devices by ``priority`` (higher first).

    Devices pick in priority order their best free acceptable subchannels, up to ``demand``;
    with ``need_bits`` (L + A) and ``capacity_bits`` (τ·R_ij) a device stops once the picked
    subchannels can carry its backlog. Ties in ``priority`` go to the lower index.
    """
    n_dev, n_ch = dev_score.shape
    holder = np.full(n_ch, -1, dtype=np.int64)
    free = np.ones(n_ch, dtype=bool)
    left = n_ch
    for i in np.lexsort((np.arange(n_dev), -priority)):
        if left == 0:
            break
        q = int(demand[i])
        if q <= 0:
            continue
        cand = np.flatnonzero(acceptable[i] & free)
        if cand.size == 0:
            continue
        cand = cand[np.argsort(-dev_score[i, cand], kind="stable")][:q]
        if need_bits is not None and capacity_bits is not None:
            cum = np.cumsum(capacity_bits[i, cand])
            cand = cand[: int(np.searchsorted(cum, need_bits[i])) + 1]
        holder[cand] = i
        free[cand] = False
        left -= cand.size
    return holder


def blocking_pairs(
    holder: np.ndarray,
    dev_score: np.ndarray,
    ch_score: np.ndarray,
    acceptable: np.ndarray,
    demand: np.ndarray,
) -> list[tuple[int, int]]:
    """Pairs (i, j) that would both rather be matched to each other (empty = stable).

    Device i wants j if j is acceptable and i has spare demand or holds a subchannel it likes
    less; subchannel j wants i if it is idle or ranks its holder below i.
    """
    n_dev, _ = dev_score.shape
    out: list[tuple[int, int]] = []
    held = [np.flatnonzero(holder == i) for i in range(n_dev)]
    for i in range(n_dev):
        worst = min((dev_score[i, j] for j in held[i]), default=np.inf)
        spare = held[i].size < demand[i]
        for j in np.flatnonzero(acceptable[i]):
            if holder[j] == i:
                continue
            if not (spare or dev_score[i, j] > worst):
                continue
            k = holder[j]
            if k < 0 or ch_score[i, j] > ch_score[k, j]:
                out.append((i, int(j)))
    return out
