"""The declared feature layout: every writer and reader agrees with it, and values are unchanged.

The pinned digests were recorded from the code before the layout was declared (commit
a2696d6: hand-placed offsets in the kernel, ``np.concatenate`` of the blocks): seeded episodes
hash every observation array, every per-action field and the kernel's hard/soft tables, so any
change of a value, dtype, shape or position fails here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.features import FIELDS
from pcnalloc.envs.layout import (
    CANDIDATE_FEATURES,
    FIELD_COLUMNS,
    FIELD_TABLES,
    FIELD_WHERE,
    HISTORY_STATS,
    NETWORK_STATS,
    compact_layout,
    request_columns,
)
from pcnalloc.envs.observation import compact_dim, request_dim
from pcnalloc.traffic.catalog import Catalog, load_catalog

PINNED = {
    ("cspf-pe", "full", 6, 150, "stress"): (
        "fa25d8a5ee16f43f9693b328349c3d36278af4d4b24dbf38fa1e8ed54b13d07a"
    ),
    ("ksp-ff", "compact", 3, 200, "storm"): (
        "75c42c0d43820f00c9dbb0a152d9e9e0147e22e356259e310e947cad38a48724"
    ),
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(None, max_levels=3)


def episode_digest(
    make_config: Any, case_network: Any, policy: str, mode: str, seed: int, steps: int, ev: str
) -> str:
    """SHA-256 over a seeded episode's observations, fields and hard/soft tables."""
    traffic: dict[str, Any] = {"load": 1.5} if ev == "stress" else {"scenario": "storm"}
    pol = make_policy(policy)
    pol.reset(seed)
    cfg = make_config(
        "case30",
        events="stress" if ev == "stress" else None,
        traffic=traffic,
        **pol.env_overrides,
    )
    env = PowerCommEnv(cfg, observation=mode, network=case_network("case30"))
    obs, _ = env.reset(seed=seed)
    h = hashlib.sha256()

    def put(o: Any) -> None:
        if isinstance(o, dict):
            for k in sorted(o):
                h.update(k.encode())
                put(o[k])
        else:
            a = np.ascontiguousarray(o)
            h.update(str(a.dtype).encode())
            h.update(repr(a.shape).encode())
            h.update(a.tobytes())

    for _ in range(steps):
        put(obs)
        e = env.current_evaluation
        put(e.fields_eager())
        put({"hard": e.hard_AR, "soft": e.soft_AQ, "mask": e.mask_A})
        obs, _r, term, trunc, _info = env.step(int(pol.act(obs)))
        if term or trunc:
            break
    return h.hexdigest()


@pytest.mark.parametrize("key", sorted(PINNED), ids=lambda k: "-".join(map(str, k)))
def test_observations_bit_identical_to_pinned(make_config, case_network, key) -> None:
    assert episode_digest(make_config, case_network, *key) == PINNED[key]


def test_layout_blocks_are_contiguous_and_named(catalog) -> None:
    lay = compact_layout(catalog.names, 13)
    assert [b.name for b in lay.blocks] == [
        "request",
        "candidates",
        "history_stats",
        "network_stats",
    ]
    off = 0
    for b in lay.blocks:
        assert b.offset == off
        off = b.stop
    assert lay.size == off
    assert lay.block("request").columns == request_columns(catalog.names)
    assert lay.block("candidates").columns == CANDIDATE_FEATURES
    assert lay.block("candidates").rows == 13
    assert lay.block("history_stats").columns == HISTORY_STATS
    assert lay.block("network_stats").columns == NETWORK_STATS
    assert lay.index("candidates", "valid", 2) == lay.block("candidates").offset + 2 * 11 + 8
    assert FIELDS == tuple(c for c, _ in FIELD_COLUMNS)
    assert {t for t, _ in FIELD_WHERE.values()} == set(range(len(FIELD_TABLES)))


def test_env_blocks_sit_where_the_layout_says(make_config, case_network) -> None:
    env = PowerCommEnv(make_config("case30", events="stress"), network=case_network("case30"))
    lay = env.obs_builder.layout
    assert lay.size == compact_dim(env.catalog, env.cfg)
    assert lay.block("request").size == request_dim(env.catalog)
    obs, _ = env.reset(seed=1)
    A = env.cfg.n_actions
    for _ in range(40):
        x = obs["compact"]
        np.testing.assert_array_equal(x[lay.slice("request")], obs["request"])
        np.testing.assert_array_equal(x[lay.slice("candidates")], obs["candidates"].ravel())
        for a in range(A):
            assert x[lay.index("candidates", "valid", a)] == obs["action_mask"][a]
            assert x[lay.index("candidates", "is_reject", a)] == float(a == A - 1)
        req = env.current_request
        assert x[lay.index("request", f"class={env.catalog.names[req.cls]}")] == 1.0
        assert x[lay.slice("request")][: env.catalog.n_classes].sum() == 1.0
        np.testing.assert_array_equal(
            x[lay.slice("history_stats")], env.obs_builder.history.stats()
        )
        ev = env.current_evaluation
        for name in FIELDS:
            t, row = FIELD_WHERE[name]
            assert ev.fields[name] is ev.fields[name]
            np.testing.assert_array_equal(ev.tables[t][row], ev.fields[name])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))


def test_diff_names_a_shuffled_column(catalog) -> None:
    lay = compact_layout(catalog.names, 13)
    assert lay.diff(lay) == [] and lay.diff(lay.to_dict()) == []
    d = lay.to_dict()
    cols = d["blocks"][1]["columns"]
    cols[0], cols[1] = cols[1], cols[0]  # planted: two candidate columns swapped
    (msg,) = lay.diff(d)
    assert "candidates column 0" in msg and "hops_div10" in msg
    d = lay.to_dict()
    d["blocks"][2], d["blocks"][3] = d["blocks"][3], d["blocks"][2]
    assert "block order" in lay.diff(d)[0]
    assert lay.diff(compact_layout(catalog.names[:-1], 13))  # another catalog
    assert lay.diff(compact_layout(catalog.names, 7))  # another action count
