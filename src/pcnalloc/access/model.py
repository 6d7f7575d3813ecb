"""The two-timescale access system: modes per epoch, subchannels per slot, queues throughout.

:class:`AccessModel` holds the state (data queues L, virtual queues O, the arrival history,
the preference values γ of eqs. (18)-(19)) and checks every decision against C2-C7. A policy
or the Gymnasium env drives it with :meth:`begin_epoch` (modes, C2-C4) and, for each of the
T0 slots, :meth:`slot_view` then :meth:`apply` (a subchannel → device map, C5-C7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcnalloc.access.channel import ChannelModel
from pcnalloc.access.config import AccessConfig
from pcnalloc.access.errors import AccessConfigError, UnreachableSinrError
from pcnalloc.access.queues import (
    data_queue,
    queuing_delay,
    throughput,
    transmission_delay,
    virtual_queue,
)
from pcnalloc.access.rates import db_to_lin, lin_to_db, ofdm_rate
from pcnalloc.access.sites import place_devices, site_table
from pcnalloc.errors import ActionError

PLC, G5 = 0, 1
"""Mode codes: PLC (grid-owned, free) and 5G (operator-owned, paid per bit)."""


@dataclass(frozen=True)
class SlotView:
    """What a subchannel allocator sees in one slot.

    Attributes:
        rates: R_ij (bit/s), eq. (1), ``(I, J)``.
        acceptable: SINR_ij ≥ SINR_min and subchannel in the device's mode, ``(I, J)``.
        backlog: L_i(t) (bit); arrival: A_i(t) (bit).
        o: virtual queues O_i(t); tau_que: τ^que_i(t) (s).
        modes: mode of each device this slot (``-1`` where the policy picks per slot).
        is_plc: which subchannels are PLC, ``(J,)``.
    """

    rates: np.ndarray
    acceptable: np.ndarray
    reliable: np.ndarray
    backlog: np.ndarray
    arrival: np.ndarray
    o: np.ndarray
    tau_que: np.ndarray
    modes: np.ndarray
    is_plc: np.ndarray
    quota: int
    slot_s: float
    alpha: float
    cost_per_bit: float


@dataclass(frozen=True)
class SlotResult:
    """Per-device outcome of one slot (delay τ_i, cost C_i, throughput D_i, objective terms)."""

    delay: np.ndarray
    cost: np.ndarray
    served: np.ndarray
    weighted_sum: float
    drift_penalty: float


class AccessModel:
    """State and dynamics of one access scenario (seeded, deterministic).

    Args:
        cfg: validated parameters.
        seed: seed of every random stream (placement, arrivals, fading, EMI).

    Raises:
        UnreachableSinrError: no device reaches ``sinr_min_db`` on any subchannel on average.
    """

    def __init__(self, cfg: AccessConfig, seed: int = 0) -> None:
        self.cfg = cfg
        ss = np.random.SeedSequence(seed)
        r_place, r_static, self._r_arr, self._r_chan = (
            np.random.default_rng(s) for s in ss.spawn(4)
        )
        table = site_table(cfg.grid)
        self.site_index = place_devices(table, cfg.devices, r_place)
        self.site_bus = table.bus[self.site_index]
        self.substation = table.substation[self.site_index]
        self.channel = ChannelModel(
            cfg, table.plc_km[self.site_index], table.g5_km[self.site_index], r_static
        )
        lo, hi = cfg.arrivals.mean_kbit
        self.mean_arrival_bits = r_static.uniform(lo, hi, cfg.devices) * 1e3
        self.n, self.j = cfg.devices, cfg.subchannels
        self.is_plc = self.channel.is_plc
        self.sinr_min = float(db_to_lin(cfg.sinr_min_db))
        mean = self.channel.mean_sinr()
        best = float(lin_to_db(mean.max()))
        if best < cfg.sinr_min_db:
            raise UnreachableSinrError(cfg.sinr_min_db, best)
        rate = ofdm_rate(mean, cfg.symbol_rate, cfg.max_bits_per_symbol) * (mean >= self.sinr_min)
        self.expected_rate = np.stack(
            [
                rate[:, self.is_plc].mean(axis=1) if cfg.plc_subchannels else np.zeros(self.n),
                rate[:, ~self.is_plc].mean(axis=1) if cfg.g5_subchannels else np.zeros(self.n),
            ],
            axis=1,
        )
        """Mean rate per device and mode at the mean SINR (bit/s), ``(I, 2)``."""
        self.reachable = self.expected_rate > 0
        self.cost_per_bit = cfg.cost_per_gbit * 1e-9
        self.reset()

    # ---------------------------------------------------------------- state
    def reset(self) -> None:
        """Empty queues, preferences at ρ, slot 0 of epoch 0."""
        n = self.n
        self.t = 0
        self.epoch = 0
        self.backlog = np.zeros(n)
        self.o = np.zeros(n)
        self.arrived_total = np.zeros(n)
        self.gamma = np.full((n, 2), float(self.cfg.rho))
        self.mode_count = np.zeros((n, 2), dtype=np.int64)
        self.modes = np.full(n, -1, dtype=np.int64)
        self.prev_modes = np.full(n, -1, dtype=np.int64)
        self.switches = 0
        self.epoch_oq = np.zeros(n)
        """Σ over the last epoch of O_i(t)·τ^que_i(t), the denominator of eqs. (20)-(21)."""
        self._ep_delay = np.zeros(n)
        self._ep_cost = np.zeros(n)
        self._ep_oq = np.zeros(n)
        self._sinr: np.ndarray | None = None
        self._arr: np.ndarray | None = None
        self._k = 0

    @property
    def mean_arrival(self) -> np.ndarray:
        """Â_i(t), eq. (13): mean of A_i(1..t−1); A_i(1) in the first slot."""
        if self.t == 0:
            return self._arr[0] if self._arr is not None else self.mean_arrival_bits
        return self.arrived_total / self.t

    @property
    def tau_que(self) -> np.ndarray:
        """τ^que_i(t) = L_i(t) / Â_i(t), eq. (12)."""
        return queuing_delay(self.backlog, self.mean_arrival)

    @property
    def done(self) -> bool:
        """True after the last slot of the last epoch."""
        return self.t >= self.cfg.slots

    # ---------------------------------------------------------------- epoch
    def check_modes(self, modes: np.ndarray | None) -> np.ndarray:
        """Validate an epoch's modes (C1-C4); ``None`` lets the allocator pick per slot.

        Raises:
            ActionError: wrong shape or a code other than 0 (PLC) / 1 (5G), or C3/C4 broken.
        """
        if modes is None:
            return np.full(self.n, -1, dtype=np.int64)
        m = np.asarray(modes)
        if m.shape != (self.n,) or not np.isin(m, (PLC, G5)).all():
            raise ActionError(modes, 2)
        m = m.astype(np.int64)
        n_plc, n_5g = int((m == PLC).sum()), int((m == G5).sum())
        if n_plc > self.cfg.plc_subchannels or n_5g > self.cfg.g5_subchannels:
            raise AccessConfigError(
                f"modes put {n_plc} devices on PLC and {n_5g} on 5G; accepted: at most "
                f"J1 = {self.cfg.plc_subchannels} and J2 = {self.cfg.g5_subchannels} (C3, C4)"
            )
        return m

    def begin_epoch(self, modes: np.ndarray | None) -> None:
        """Fix the modes of the next T0 slots and draw their channels and arrivals."""
        m = self.check_modes(modes)
        t0 = self.cfg.slots_per_epoch
        self.modes = m
        self._sinr = self.channel.draw(t0, self._r_chan)
        a = self.cfg.arrivals
        if a.burstiness > 0:
            k = 1.0 / a.burstiness**2
            self._arr = self._r_arr.gamma(k, self.mean_arrival_bits / k, size=(t0, self.n))
        else:
            self._arr = np.tile(self.mean_arrival_bits, (t0, 1))
        self._k = 0
        self._ep_delay[:] = 0.0
        self._ep_cost[:] = 0.0
        self._ep_oq[:] = 0.0

    def end_epoch(self) -> None:
        """Update the preference values γ with eqs. (18)-(19) from the epoch just played."""
        t0 = self.cfg.slots_per_epoch
        for mode, perf in (
            (PLC, self._ep_delay / t0),
            (G5, (self._ep_delay + self.cfg.alpha * self._ep_cost) / t0),
        ):
            used = self.modes == mode
            prev = self.mode_count[:, mode]
            num = self.gamma[:, mode] * (prev + 1) - used * perf
            self.gamma[:, mode] = np.where(used, num / (prev + used + 1), self.gamma[:, mode])
            self.mode_count[:, mode] += used
        self.epoch_oq = self._ep_oq.copy()
        self.epoch += 1

    # ---------------------------------------------------------------- slot
    def slot_view(self) -> SlotView:
        """Rates, reliability mask and queue state of the current slot."""
        if self._sinr is None or self._arr is None or self._k >= self.cfg.slots_per_epoch:
            raise AccessConfigError("slot_view before begin_epoch; call begin_epoch(modes) first")
        s = self._sinr[self._k]
        rel = s >= self.sinr_min
        rates = ofdm_rate(s, self.cfg.symbol_rate, self.cfg.max_bits_per_symbol)
        if (self.modes >= 0).all():
            in_mode = np.where(
                self.modes[:, None] == PLC, self.is_plc[None, :], ~self.is_plc[None, :]
            )
            acc = rel & in_mode
        else:
            acc = rel.copy()
            fixed = self.modes >= 0
            acc[fixed] &= np.where(self.modes[fixed, None] == PLC, self.is_plc, ~self.is_plc)
        return SlotView(
            rates=rates,
            acceptable=acc,
            reliable=rel,
            backlog=self.backlog.copy(),
            arrival=self._arr[self._k].copy(),
            o=self.o.copy(),
            tau_que=self.tau_que,
            modes=self.modes.copy(),
            is_plc=self.is_plc,
            quota=self.cfg.quota,
            slot_s=self.cfg.slot_s,
            alpha=self.cfg.alpha,
            cost_per_bit=self.cost_per_bit,
        )

    def apply(self, view: SlotView, holder: np.ndarray) -> SlotResult:
        """Play one slot with ``holder[j]`` = device on subchannel j (−1 idle); C5-C7 checked.

        Raises:
            ActionError: wrong shape or device index.
            AccessConfigError: a broken quota, mode or reliability constraint.
        """
        h = np.asarray(holder)
        if h.shape != (self.j,) or h.min(initial=0) < -1 or h.max(initial=-1) >= self.n:
            raise ActionError(holder, self.n)
        used = h >= 0
        dev, ch = h[used], np.flatnonzero(used)
        if dev.size and not view.acceptable[dev, ch].all():
            bad = int(ch[~view.acceptable[dev, ch]][0])
            raise AccessConfigError(
                f"subchannel {bad} given to device {int(h[bad])} breaks SINR_min or its mode "
                "(C7, C2); accepted: subchannels acceptable to that device"
            )
        count = np.bincount(dev, minlength=self.n)
        if count.max(initial=0) > self.cfg.quota:
            raise AccessConfigError(
                f"device {int(count.argmax())} holds {int(count.max())} subchannels; "
                f"accepted: at most q_m = {self.cfg.quota} (C5)"
            )
        rate = np.bincount(dev, weights=view.rates[dev, ch], minlength=self.n)
        plc_n = np.bincount(dev, weights=view.is_plc[ch].astype(float), minlength=self.n)
        mixed = (plc_n > 0) & (plc_n < count)
        if mixed.any():
            raise AccessConfigError(
                f"device {int(np.flatnonzero(mixed)[0])} uses PLC and 5G in one slot; "
                "accepted: one mode per device (C2)"
            )
        on_5g = np.where(self.modes >= 0, self.modes == G5, (count > 0) & (plc_n == 0))
        tau_q = view.tau_que
        served = throughput(view.backlog, view.arrival, self.cfg.slot_s, rate)
        delay = transmission_delay(view.backlog, view.arrival, self.cfg.slot_s, rate)
        cost = on_5g * self.cost_per_bit * served
        self.backlog = data_queue(view.backlog, view.arrival, served)
        self.arrived_total += view.arrival
        slot_mode = np.where(count > 0, np.where(plc_n > 0, PLC, G5), -1)
        if (self.modes < 0).all():
            moved = (slot_mode >= 0) & (self.prev_modes >= 0) & (slot_mode != self.prev_modes)
            self.switches += int(moved.sum())
            self.prev_modes = np.where(slot_mode >= 0, slot_mode, self.prev_modes)
        elif self._k == 0:
            self.switches += int(((self.prev_modes >= 0) & (self.prev_modes != self.modes)).sum())
            self.prev_modes = self.modes.copy()
        oq = self.o * tau_q
        self.o = virtual_queue(self.o, tau_q, self.cfg.queue_delay_max_s)
        self._ep_delay += delay
        self._ep_cost += cost
        self._ep_oq += oq
        self.t += 1
        self._k += 1
        ws = float(delay.sum() + self.cfg.alpha * cost.sum())
        return SlotResult(delay, cost, served, ws, ws + float(oq.sum()))
