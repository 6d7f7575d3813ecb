"""The compact column's feature names in the Parquet schema metadata, read with plain pyarrow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pcnalloc.config import env_config
from pcnalloc.library import LibraryReader, LibrarySpec, encode_metadata
from pcnalloc.library.build import build_library
from pcnalloc.library.schema import FEATURES_KEY, compact_feature_names

ENV = {"traffic": {"warm_start": False}}


def _names(part: Path) -> list[str]:
    meta = pq.read_schema(part).metadata  # plain pyarrow: no pcnalloc reader involved
    return json.loads(meta[b"compact_features"])


def test_a_built_library_names_every_compact_position(tmp_path: Path) -> None:
    cfg = env_config(network={"case": "case14"}, **ENV)
    build_library(
        "ksp-ff",
        tmp_path,
        cases=["case14"],
        loads=[1.0],
        episodes=1,
        requests=40,
        explore=0.0,
        env=cfg,
    )
    part = sorted(tmp_path.glob("*.parquet"))[0]
    names = _names(part)
    rows = LibraryReader(tmp_path).read_all()
    assert len(names) == rows["compact"].shape[1] == 183 and len(set(names)) == len(names)
    assert json.loads(pads.dataset(tmp_path).schema.metadata[b"compact_features"]) == names
    # the names say what the numbers are: each action's validity flag is its mask bit,
    # the last action is the reject action
    A = rows["action_mask"].shape[1]
    valid = [names.index(f"candidates[{a}].valid") for a in range(A)]
    np.testing.assert_array_equal(rows["compact"][:, valid], rows["action_mask"])
    reject = [names.index(f"candidates[{a}].is_reject") for a in range(A)]
    assert (rows["compact"][:, reject] == np.eye(A)[-1]).all()
    assert names[0].startswith("request.") and names[-1].startswith("network_stats.")
    # planted fault: with two names swapped the same check fails
    wrong = list(valid)
    wrong[0] = names.index("candidates[0].is_reject")
    assert not np.array_equal(rows["compact"][:, wrong], rows["action_mask"])


def test_rows_of_another_layout_carry_no_names() -> None:
    spec = LibrarySpec(n_actions=2, k_paths=1, grant_levels=1, compact_dim=7, catalog=("a",))
    assert compact_feature_names(spec) is None
    meta = encode_metadata(spec, env_config={}, teacher_sha256="", seeds=[], cases=[], loads=[])
    assert FEATURES_KEY not in meta
    given = [f"f{i}" for i in range(spec.compact_dim)]
    meta = encode_metadata(
        spec, env_config={}, teacher_sha256="", seeds=[], cases=[], loads=[], feature_names=given
    )
    assert json.loads(meta[FEATURES_KEY]) == given
