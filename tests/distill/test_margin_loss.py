"""The logit-margin hinge: zero past the margin, the closest rival only, clear rows only, and
switched by ``DistillConfig.margin_weight``."""

from __future__ import annotations

import torch

from pcnalloc.distill.config import DistillConfig, distill_config
from pcnalloc.distill.loss import distill_loss, margin_loss

Q = torch.tensor([[1.0, 0.5, 0.0, 0.2], [1.0, 1.0 - 1e-4, 0.0, 0.2]])
MASK = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]])


def test_hinge_on_the_closest_rival_of_clear_rows() -> None:
    # row 0 is clear (gap 0.5): rivals at gaps 0.2 (masked), 1.0 and 3.0 → m − 0.2 = 0.8
    z = torch.tensor([[3.0, 2.0, 2.8, 0.0], [3.0, 2.0, 2.8, 0.0]])
    got = margin_loss(z, Q, MASK, margin=1.0)
    assert torch.isclose(got, torch.tensor(0.8 / 2))  # row 1 ties in value: not counted
    wide = torch.tensor([[5.0, 2.0, 2.8, 0.0], [3.0, 2.0, 2.8, 0.0]])
    assert margin_loss(wide, Q, MASK, margin=1.0) == 0
    assert margin_loss(z, Q, MASK, margin=1.0, clear_gap=0.0) > got  # row 1 counted then


def test_gradient_steps_widen_the_gap() -> None:
    z = torch.tensor([[1.0, 0.9, 0.0, 0.95]], requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        margin_loss(z, Q[:1], MASK[:1], margin=1.0).backward()
        opt.step()
    zz = z.detach()[0]
    assert (zz[0] - zz[1:]).min() >= 1.0 - 1e-4


def test_the_switch_adds_the_weighted_term_only_when_on() -> None:
    z = torch.tensor([[3.0, 2.0, 2.8, 0.0], [3.0, 2.0, 2.8, 0.0]])
    zero = torch.zeros_like(z)
    kw = {"tau": 0.01, "lambda_hard": 0.0, "lambda_soft": 0.0}
    off = distill_loss(z, Q, MASK, zero, zero, **kw, margin_weight=0.0)
    on = distill_loss(z, Q, MASK, zero, zero, **kw, margin_weight=2.0, margin=1.0)
    assert off.margin == 0 and torch.isclose(on.margin, torch.tensor(0.4))
    assert torch.isclose(on.total - off.total, 2.0 * on.margin)
    assert DistillConfig().margin_weight == 0.1 and DistillConfig().margin == 1.0
    assert distill_config(margin_weight=0).margin_weight == 0


def test_bad_margin_settings_are_typed_errors() -> None:
    import pytest

    from pcnalloc.errors import ConfigError

    for bad in ({"margin": 0}, {"margin_weight": -1}):
        with pytest.raises(ConfigError, match="margin"):
            distill_config(**bad)
