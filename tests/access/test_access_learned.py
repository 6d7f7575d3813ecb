"""Learned access mode policy: features, per-device reward, guard, teacher → library →
student through the project's stages, paired comparison, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.access import access_config, make_access_policy, run_access
from pcnalloc.access.env import AccessEnv
from pcnalloc.access.errors import AccessConfigError
from pcnalloc.access.features import FEATURES, N_FEATURES, device_features
from pcnalloc.access.model import AccessModel
from pcnalloc.cli import main

SMALL = dict(devices=12, plc_subchannels=10, g5_subchannels=4, quota=3, epochs=2, slots_per_epoch=3)


def test_features_and_env_observation_agree() -> None:
    env = AccessEnv(SMALL)
    obs, _ = env.reset(seed=3)
    x = device_features(env.model)
    assert x.shape == (12, N_FEATURES) == (12, len(FEATURES))
    assert np.array_equal(obs, x.ravel()) and np.isfinite(x).all()
    # the rank feature orders devices by their 5G advantage
    adv = x[:, FEATURES.index("g5_advantage_over_max")]
    rank = x[:, FEATURES.index("g5_advantage_rank")]
    assert np.allclose(np.sort(rank), np.arange(12) / 11)
    i, j = np.meshgrid(np.arange(12), np.arange(12))
    assert (rank[i] < rank[j])[adv[i] > adv[j]].all()


def _replayed_split(seed: int, o0: float, with_vq: bool) -> np.ndarray:
    from pcnalloc.access.policies import matching_allocate
    from pcnalloc.access.policy import cap_modes

    cfg = access_config(SMALL)
    m = AccessModel(cfg, seed)
    m.o[:] = o0
    m.begin_epoch(cap_modes(np.zeros(12, np.int64), m.o, (10, 4)))
    per = np.zeros(12)
    for _ in range(cfg.slots_per_epoch):
        view = m.slot_view()
        res = m.apply(view, matching_allocate(view, cfg.propose_to_need))
        per += res.delay + cfg.alpha * res.cost + (view.o * view.tau_que if with_vq else 0.0)
    return per / cfg.slots_per_epoch


def test_device_cost_is_the_reward_split_per_device() -> None:
    env = AccessEnv(SMALL)
    env.reset(seed=1)
    env.model.o[:] = 5.0  # a non-empty virtual queue makes the O·τ^que term count
    _, r, _, _, info = env.step(np.zeros(12, dtype=np.int64))
    cost = np.asarray(info["device_cost"])
    assert cost.shape == (12,) and (cost >= 0).all()
    assert r == pytest.approx(-cost.mean(), rel=1e-9)
    assert np.allclose(cost, _replayed_split(1, 5.0, with_vq=True))
    # planted fault: a split without the virtual-queue term is caught
    assert not np.allclose(cost, _replayed_split(1, 5.0, with_vq=False))


def test_joint_modes_respects_places_and_mask() -> None:
    from pcnalloc.twolayer.teacher import joint_modes

    cfg = access_config(SMALL)
    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.normal(size=(12, 2))
        mask = rng.random((12, 2)) < 0.8
        modes = joint_modes(scores, mask, cfg)
        assert (modes == 0).sum() <= cfg.plc_subchannels
        assert (modes == 1).sum() <= cfg.g5_subchannels
        # a device that could take its wanted mode and lost it had a weaker preference
        both = mask.all(axis=1)
        want = np.argmax(scores, axis=1)
        moved = both & (modes != want)
        if moved.any():
            gap = np.abs(scores[:, 1] - scores[:, 0])
            kept = both & (modes == want) & (want == want[moved][0])
            assert gap[kept].min(initial=np.inf) >= gap[moved & (want == want[moved][0])].max()


class _Always5G:
    """A stand-in network that wants 5G for every device (raw choice breaks C4)."""

    def __call__(self, x):  # type: ignore[no-untyped-def]
        import torch

        return torch.stack([torch.zeros(x.shape[0]), torch.ones(x.shape[0])], dim=1)


def test_guard_caps_a_raw_choice_and_counts_it() -> None:
    pytest.importorskip("torch")
    from pcnalloc.twolayer.learned import LearnedModePolicy

    cfg = access_config(SMALL)
    pol = LearnedModePolicy(_Always5G(), "student-test")
    model = AccessModel(cfg, 0)
    modes = pol.modes(model)
    assert (modes == 1).sum() <= cfg.g5_subchannels
    assert pol.guard_overrides >= 12 - cfg.g5_subchannels
    run_access(LearnedModePolicy(_Always5G(), "student-test"), cfg, seed=0)  # model checks pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from pcnalloc.twolayer.teacher import AccessTeacherConfig
    from pcnalloc.twolayer.train import train_pipeline

    out = tmp_path_factory.mktemp("learned") / "run"
    train_pipeline(
        out,
        access_config(SMALL),
        AccessTeacherConfig(episodes=4, warmup=20, batch_size=32, hidden=(16,)),
        library_episodes=4,
        distill={"epochs": 3, "patience": 2, "hidden": (8,)},
    )
    return out


def test_pipeline_writes_teacher_library_and_student(trained: Path) -> None:
    from pcnalloc.library import LibraryReader

    assert (trained / "teacher.pt").is_file() and (trained / "train.json").is_file()
    lib = LibraryReader(trained / "library")
    assert lib.spec.n_actions == 2 and lib.spec.compact_dim == N_FEATURES
    rows = lib.read_all()
    assert len(rows["action"]) == 4 * 2 * 12  # episodes × epochs × devices
    assert np.array_equal(rows["hard"], 1 - rows["action_mask"])
    assert (rows["soft"][:, 0, :] == 0).all()  # PLC carries no traffic cost
    assert (trained / "student" / "student.pt").is_file()
    # the compact column's names, read with plain pyarrow as in a backbone library
    import json

    import pyarrow.parquet as pq

    from pcnalloc.library.schema import FEATURES_KEY

    (part,) = sorted((trained / "library").glob("*.parquet"))
    assert json.loads(pq.read_schema(part).metadata[FEATURES_KEY]) == list(FEATURES)


def test_learned_specs_play_and_compare(trained: Path) -> None:
    from pcnalloc.twolayer.compare import compare

    cfg = access_config(SMALL)
    for spec in (f"learned@{trained}", f"teacher@{trained}", f"student@{trained / 'student'}"):
        pol = make_access_policy(spec)
        r1 = run_access(pol, cfg, seed=2)
        r2 = run_access(make_access_policy(spec), cfg, seed=2)
        assert r1["metrics"] == r2["metrics"]  # deterministic per seed
        assert r1["policy"] in ("teacher", "student")
    res = compare([f"learned@{trained}", "matching", "all-plc"], cfg, [0, 1, 2])
    rows = {r["against"]: r for r in res["paired"]}
    assert set(rows) == {"matching", "all-plc"}
    for r in rows.values():
        p = r["weighted_sum"]
        assert p["n"] == 3 and p["verdict"] in ("ahead", "level", "behind")
        per = res["policies"]
        d = [
            per[f"learned@{trained}"]["per_seed"]["weighted_sum"][s]
            - per[r["against"]]["per_seed"]["weighted_sum"][s]
            for s in (0, 1, 2)
        ]
        assert p["mean_diff"] == pytest.approx(np.mean(d))
    # a policy against itself is level with a zero difference
    same = compare([f"learned@{trained}", f"student@{trained / 'student'}"], cfg, [0, 1])
    assert same["paired"][0]["weighted_sum"]["mean_diff"] == 0.0


def test_bad_learned_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for spec in (f"student@{tmp_path / 'nope'}", f"teacher@{junk}", "learned@"):
        with pytest.raises(AccessConfigError):
            make_access_policy(spec)
    assert main(["access", "compare", "--policies", f"teacher@{junk},matching"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    existing = tmp_path / "exists"
    existing.mkdir()
    assert main(["access", "train", "--out", str(existing), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and "\n" not in err


def test_teacher_training_is_deterministic_per_seed() -> None:
    torch = pytest.importorskip("torch")
    from pcnalloc.twolayer.teacher import AccessTeacherConfig, train_access_teacher

    def weights(seed: int) -> list:  # type: ignore[type-arg]
        tc = AccessTeacherConfig(episodes=3, warmup=20, batch_size=16, hidden=(8,), seed=seed)
        net, log = train_access_teacher(access_config(SMALL), tc)
        assert all(r["seed"] >= 1_000_000 for r in log)  # never an evaluation seed
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_train_and_compare_cli(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import json

    cfg = tmp_path / "small.yaml"
    cfg.write_text("".join(f"{k}: {v}\n" for k, v in SMALL.items()))
    out = tmp_path / "learned"
    args = ["access", "train", "--out", str(out), "--episodes", "2", "--library-episodes", "3"]
    assert main([*args, "--config", str(cfg)]) == 0
    assert (out / "student" / "student.pt").is_file()
    res = tmp_path / "cmp.json"
    spec = f"learned@{out},matching"
    assert main(["access", "compare", "--policies", spec, "--seeds", "2", "--config", str(cfg),
                 "--json", str(res)]) == 0  # fmt: skip
    rows = json.loads(res.read_text())["paired"]
    assert rows[0]["against"] == "matching" and rows[0]["weighted_sum"]["n"] == 2
