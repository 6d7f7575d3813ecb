"""The decision reward (DESIGN §4) as pure functions of one decision's figures.

The simulator (:class:`pcnalloc.envs.power_comm.PowerCommEnv`) computes what a decision did
— the grant, the route's hops and latency, the utilisation after admission, the value of the
flows it pre-empted — and calls one of these to score it; nothing here reads or changes the
environment, so the reward can be tested on hand numbers and reused by tools that replay
decisions. The arithmetic is written in the simulator's original order, so the rewards are
the same floats bit for bit (tests/envs/test_sim_parity.py pins them).
"""

from __future__ import annotations

from pcnalloc.config import RewardConfig


def accept_reward(
    rw: RewardConfig,
    *,
    offered_value: float,
    grant: float,
    kbps: int,
    hops: int,
    util_after: float,
    latency_ms: float,
    bound_ms: float,
    preempted_value: float,
) -> float:
    """Reward of an admission.

    ``offered·g − w_res·(kb/s / 1000)·hops − w_bal·max(0, u_after − knee) − w_lat·latency/bound
    − preempt_penalty·pre-empted value``.

    Args:
        rw: the reward weights.
        offered_value: the request's value times the share of its service still to run.
        grant: the granted share of the requested bandwidth, in (0, 1].
        kbps: the granted rate (kb/s).
        hops: links on the primary route.
        util_after: the route's highest link utilisation after admission (0..1+).
        latency_ms: the route's latency (ms).
        bound_ms: the class's latency bound (ms).
        preempted_value: summed value of the flows pre-empted to make room.
    """
    return (
        offered_value * grant
        - rw.w_res * (kbps / 1000.0) * hops
        - rw.w_bal * max(0.0, util_after - rw.balance_knee)
        - rw.w_lat * latency_ms / bound_ms
        - rw.preempt_penalty * preempted_value
    )


def reject_reward(rw: RewardConfig, *, offered_value: float, plain_valid: bool) -> float:
    """Reward of a rejection: ``−block_penalty·offered`` where an admission without
    pre-emption was possible, else 0 (rejecting rather than displacing another flow is never
    penalised)."""
    return -rw.block_penalty * offered_value if plain_valid else 0.0


def refused_reward(rw: RewardConfig, *, value: float) -> float:
    """Reward of a masked (refused) action: ``−invalid_penalty·value`` (the class's whole
    value; nothing in the network changes)."""
    return -rw.invalid_penalty * value
