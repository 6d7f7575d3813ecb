"""Student architectures: shapes, size budget, config round trip, seeded init."""

from __future__ import annotations

import pytest
import torch

from pcnalloc.distill import EDGE_BUDGET_BYTES, make_student, student_from_config
from pcnalloc.errors import ConfigError


def test_default_edge_student_fits_one_megabit() -> None:
    m = make_student("edge", input_dim=183, n_actions=13)
    assert m.input_key == "compact"
    assert m.param_count == 183 * 96 + 96 + 96 * 64 + 64 + 64 * 13 + 13
    assert m.param_bytes <= EDGE_BUDGET_BYTES == 125_000
    assert m.param_bytes == 4 * (m.param_count + 2 * 183)


@pytest.mark.parametrize(("kind", "dim"), [("edge", 183), ("latent", 128)])
def test_forward_shape_and_config_round_trip(kind: str, dim: int) -> None:
    m = make_student(kind, input_dim=dim, n_actions=13, generator=torch.Generator().manual_seed(1))
    x = torch.randn(5, dim, generator=torch.Generator().manual_seed(2))
    z = m(x)
    assert z.shape == (5, 13) and z.dtype == torch.float32
    twin = student_from_config(m.config())
    twin.load_state_dict(m.state_dict())
    assert torch.equal(twin(x), z)
    assert twin.input_key == ("compact" if kind == "edge" else "state")


def test_seeded_init_is_reproducible() -> None:
    def build(seed: int):
        gen = torch.Generator().manual_seed(seed)
        return make_student("edge", input_dim=183, n_actions=13, generator=gen)

    a, b, c = build(3), build(3), build(4)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.net[0].weight, c.net[0].weight)


def test_bad_kind_and_config_raise() -> None:
    with pytest.raises(ConfigError, match="unknown student kind 'huge'"):
        make_student("huge", input_dim=4, n_actions=3)
    with pytest.raises(ConfigError, match="lacks 'hidden'"):
        student_from_config({"kind": "edge", "input_dim": 4, "n_actions": 3})


def test_shared_head_student_scores_actions_with_one_head() -> None:
    from pcnalloc.config import EnvConfig
    from pcnalloc.distill.students import SharedHeadStudent, compact_layout
    from pcnalloc.library import LibrarySpec

    spec = LibrarySpec.from_env_config(EnvConfig())
    layout = compact_layout(spec)
    assert layout == {"n_feats": 11, "request_dim": 27}
    gen = torch.Generator().manual_seed(0)
    m = make_student(
        "edge", input_dim=183, n_actions=13, arch="shared", layout=layout, generator=gen
    )
    assert isinstance(m, SharedHeadStudent) and m.param_bytes <= EDGE_BUDGET_BYTES
    x = torch.randn(3, 183, generator=gen)
    z = m(x)
    assert z.shape == (3, 13)
    # Swapping two actions' candidate rows swaps their scores (up to the per-action bias).
    y = x.clone()
    a, b = slice(27, 38), slice(38, 49)
    y[:, a], y[:, b] = x[:, b], x[:, a]
    zy = m(y) - m.action_bias
    zx = z - m.action_bias
    assert torch.allclose(zy[:, 0], zx[:, 1], atol=1e-6)
    assert torch.allclose(zy[:, 1], zx[:, 0], atol=1e-6)
    twin = student_from_config(m.config())
    twin.load_state_dict(m.state_dict())
    assert torch.equal(twin(x), z)
    with pytest.raises(ConfigError, match="needs the compact layout"):
        make_student("latent", input_dim=128 + 183, n_actions=13, arch="shared")
    latent = make_student(
        "latent",
        input_dim=128 + 183,
        n_actions=13,
        arch="shared",
        layout=compact_layout(spec, "latent"),
    )
    assert latent.input_key == "state+compact" and latent.request_dim == 128 + 27
    assert latent(torch.randn(2, 128 + 183)).shape == (2, 13)
