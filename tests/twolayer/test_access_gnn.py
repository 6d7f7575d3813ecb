"""Graph teacher of the access layer: the device–subchannel graph by hand, the GATv2 Q
network's shape, mask and batching, determinism per seed, the distillation path from a gnn
teacher to a signed artifact, and the CLI (smoke, bad encoder)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pcnalloc.access import access_config
from pcnalloc.access.model import AccessModel
from pcnalloc.cli import main
from pcnalloc.twolayer.graph import (
    EDGE_FEATURES,
    SUBCHANNEL_FEATURES,
    batch_graphs,
    static_graph,
)

SMALL = dict(devices=12, plc_subchannels=10, g5_subchannels=4, quota=3, epochs=2, slots_per_epoch=3)


def _tiny_model() -> SimpleNamespace:
    """2 devices, 3 PLC + 2 5G subchannels, mean SINR given in dB by hand."""
    cfg = SimpleNamespace(symbol_rate=100.0, max_bits_per_symbol=4, sinr_min_db=10.0)
    sinr_db = np.array(
        [
            [12.0, 20.0, 5.0, 15.0, 15.0],  # device 0: PLC 1 best, PLC 2 unreliable
            [9.0, 11.0, 30.0, 25.0, 25.0],  # device 1: PLC 0 unreliable
        ]
    )
    channel = SimpleNamespace(mean_sinr=lambda: 10 ** (sinr_db / 10))
    return SimpleNamespace(
        cfg=cfg,
        channel=channel,
        sinr_min=10.0,
        is_plc=np.array([True, True, True, False, False]),
        n=2,
        j=5,
        sinr_db=sinr_db,
    )


def test_full_graph_by_hand() -> None:
    m = _tiny_model()
    g = static_graph(m, top_k=0)  # type: ignore[arg-type]
    assert g.edge_index_2E.tolist() == [[0] * 5 + [1] * 5, [0, 1, 2, 3, 4] * 2]
    assert g.edge_attr_ED.shape == (10, len(EDGE_FEATURES))
    # rate = N_s·min(R_max, ⌊log2(1 + SINR)⌋) over N_s·R_max, 0 where SINR < SINR_min
    bits = lambda db: min(4, math.floor(math.log2(1 + 10 ** (db / 10))))  # noqa: E731
    for e, (d, s) in enumerate(g.edge_index_2E.T):
        db = m.sinr_db[d, s]
        ok = db >= 10.0
        margin, rate, rel, is5g = g.edge_attr_ED[e]
        assert margin == pytest.approx((db - 10.0) / 10.0, rel=1e-5)
        assert rate == pytest.approx(bits(db) / 4 if ok else 0.0, rel=1e-6)
        assert rel == float(ok) and is5g == float(s >= 3)
    # subchannel rows: PLC / 5G, share of devices reliable on it, mean rate over the devices
    assert g.sub_x_JS.shape == (5, len(SUBCHANNEL_FEATURES))
    assert g.sub_x_JS[:, 0].tolist() == [1, 1, 1, 0, 0]
    assert g.sub_x_JS[:, 1].tolist() == [0, 0, 0, 1, 1]
    assert g.sub_x_JS[:, 2].tolist() == [0.5, 1.0, 0.5, 1.0, 1.0]
    assert g.sub_x_JS[0, 3] == pytest.approx(bits(12.0) / 4 / 2)
    assert g.sub_x_JS[3, 3] == pytest.approx((bits(15.0) + bits(25.0)) / 4 / 2)


def test_top_k_graph_by_hand() -> None:
    g = static_graph(_tiny_model(), top_k=1)  # type: ignore[arg-type]
    # per device the best PLC subchannel and one 5G one; the 5G tie (equal SINR on both 5G
    # subchannels) is broken by rotation: device 0 takes subchannel 3, device 1 subchannel 4
    assert g.edge_index_2E.tolist() == [[0, 0, 1, 1], [1, 3, 2, 4]]
    g2 = static_graph(_tiny_model(), top_k=5)  # type: ignore[arg-type]
    assert g2.n_edges == 10  # k is capped at J1 and J2
    # on the real default model every device has 2k edges and the 5G edges spread out
    m = AccessModel(access_config(), 0)
    g8 = static_graph(m, top_k=8)
    assert g8.n_edges == 100 * 16
    deg5 = np.bincount(g8.edge_index_2E[1], minlength=128)[100:]
    assert deg5.min() >= 28 and deg5.max() <= 29


def test_batch_offsets_and_bad_batches() -> None:
    m = _tiny_model()
    g = static_graph(m, top_k=1)  # type: ignore[arg-type]
    x = [np.zeros((2, 19), np.float32), np.ones((2, 19), np.float32)]
    b = batch_graphs([g, g], x)
    assert b.graphs == 2 and b.dev_x_NF.shape == (4, 19) and b.sub_x_MS.shape == (10, 4)
    assert b.edge_index_2E.tolist() == [[0, 0, 1, 1, 2, 2, 3, 3], [1, 3, 2, 4, 6, 8, 7, 9]]
    with pytest.raises(ValueError, match="same I, J"):
        batch_graphs([g, static_graph(m, top_k=0)], x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one device table"):
        batch_graphs([g], x)


def test_gnn_q_shape_batching_and_masks() -> None:
    torch = pytest.importorskip("torch")
    from pcnalloc.access.features import device_features
    from pcnalloc.twolayer.gnn import GraphQNetwork, graph_q_network
    from pcnalloc.twolayer.learned import LearnedModePolicy

    cfg = access_config(SMALL)
    m = AccessModel(cfg, 3)
    net = graph_q_network(hidden=8, rounds=2, q_hidden=(16,), top_k=2, seed=0).eval()
    g = static_graph(m, 2)
    x = device_features(m)
    with torch.no_grad():
        q1 = net(batch_graphs([g], [x]))
        q2 = net(batch_graphs([g, g], [x[::-1].copy(), x]))
    assert q1.shape == (12, 2) and torch.isfinite(q1).all()
    # a graph's Q does not depend on what else is in the batch
    assert torch.allclose(q2[12:], q1, atol=1e-6)
    # … but does depend on the subchannel side (the graph is read, not only the rows)
    g_other = static_graph(m, 0)
    with torch.no_grad():
        assert not torch.allclose(net(batch_graphs([g_other], [x])), q1)
    pol = LearnedModePolicy(net, "teacher")
    assert isinstance(pol.net, GraphQNetwork)
    assert np.allclose(pol.model_scores(m), q1.numpy())
    # masks: forbid PLC for 3 devices (J2 = 4 places), 5G for 3 others
    m.reachable = np.ones((12, 2), bool)
    m.reachable[:3, 0] = False
    m.reachable[9:, 1] = False
    modes = pol.modes(m)
    assert (modes[:3] == 1).all() and (modes[9:] == 0).all()
    assert (modes == 1).sum() <= cfg.g5_subchannels and (modes == 0).sum() <= cfg.plc_subchannels


def test_gnn_teacher_is_deterministic_per_seed() -> None:
    torch = pytest.importorskip("torch")
    from pcnalloc.twolayer.teacher import AccessTeacherConfig, train_access_teacher

    def weights(seed: int) -> list:  # type: ignore[type-arg]
        tc = AccessTeacherConfig(
            episodes=4, warmup=20, batch_size=16, hidden=(8,), seed=seed,
            encoder="gnn", gnn_hidden=8, gnn_top_k=2,
        )  # fmt: skip
        net, log = train_access_teacher(access_config(SMALL), tc)
        assert all(np.isfinite(r["loss"]) for r in log[1:])  # gradient steps were taken
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_gnn_teacher_distils_into_a_signed_mlp_artifact(tmp_path: Path) -> None:
    """teacher (gnn) → library → student → artifact with the stages unchanged."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from pcnalloc.access import make_access_policy, run_access
    from pcnalloc.access.env import AccessEnv
    from pcnalloc.edge.keys import save_keypair
    from pcnalloc.library import LibraryReader
    from pcnalloc.twolayer.artifact import load_access_artifact
    from pcnalloc.twolayer.export import compile_access_student
    from pcnalloc.twolayer.gnn import GraphQNetwork
    from pcnalloc.twolayer.teacher import AccessTeacherConfig, load_teacher
    from pcnalloc.twolayer.train import train_pipeline

    run = tmp_path / "run"
    tc = AccessTeacherConfig(
        episodes=3, warmup=20, batch_size=16, hidden=(8,), encoder="gnn", gnn_hidden=8,
        gnn_top_k=3,
    )  # fmt: skip
    rep = train_pipeline(
        run, access_config(SMALL), tc, library_episodes=3,
        distill={"epochs": 2, "patience": 2, "hidden": (8,)},
    )  # fmt: skip
    net, ck = load_teacher(run / "teacher.pt")
    assert isinstance(net, GraphQNetwork) and ck["encoder"] == "gnn" and net.top_k == 3
    assert rep["teacher_config"]["encoder"] == "gnn"
    # the library's Q columns are the graph teacher's, on the graph of each epoch
    rows = LibraryReader(run / "library").read_all()
    env = AccessEnv(SMALL)
    env.reset(seed=int(rows["seed"][0]))
    first = (rows["episode_id"] == 0) & (rows["step"] < 12)
    pol = make_access_policy(f"teacher@{run}")
    q = pol.model_scores(env.model)  # type: ignore[attr-defined]
    lib_q = np.stack(rows["q_values"][first])
    assert np.allclose(lib_q, q, atol=1e-5)
    with torch.no_grad():  # planted fault: the same weights on another graph disagree
        other = net(batch_graphs([static_graph(env.model, 0)], [np.stack(rows["compact"][first])]))
    assert not np.allclose(lib_q, other.numpy(), atol=1e-5)
    # the student reads the rows (an MLP), compiles, signs and plays as edge@
    key, pub = save_keypair(tmp_path / "keys")
    compile_access_student(run, run / "library", private_key=key, out_dir=tmp_path / "art")
    art = load_access_artifact(tmp_path / "art", pub)
    assert art.manifest["source"]["teacher_sha256"] == rep["teacher_sha256"]
    res = run_access(make_access_policy(f"edge@{tmp_path / 'art'}::{pub}"), access_config(SMALL))
    assert np.isfinite(res["metrics"]["weighted_sum"])


def test_access_train_cli_gnn_smoke_and_bad_encoder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    cfg = tmp_path / "small.yaml"
    cfg.write_text("".join(f"{k}: {v}\n" for k, v in SMALL.items()))
    out = tmp_path / "learned"
    args = ["access", "train", "--out", str(out), "--episodes", "2", "--library-episodes", "3",
            "--config", str(cfg)]  # fmt: skip
    assert main([*args, "--encoder", "gnn"]) == 0
    assert (out / "student" / "student.pt").is_file()
    from pcnalloc.twolayer.teacher import load_teacher

    assert load_teacher(out / "teacher.pt")[1]["encoder"] == "gnn"
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main([*args[:2], "--out", str(bad), "--encoder", "transformer"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert "encoder" in err and "'mlp'" in err and "'gnn'" in err and "transformer" in err
    assert not bad.exists()


def test_checkpoint_encoder_is_checked(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from pcnalloc.access.errors import AccessConfigError
    from pcnalloc.twolayer.gnn import GraphQNetwork
    from pcnalloc.twolayer.teacher import (
        AccessTeacherConfig,
        build_q_network,
        load_teacher,
        save_teacher,
    )

    tc = AccessTeacherConfig(encoder="gnn", gnn_hidden=8, gnn_top_k=2, hidden=(8,))
    net = build_q_network(tc)
    path = tmp_path / "t.pt"
    save_teacher(path, net, cfg=tc, env_config=access_config(SMALL), log=[])
    loaded, _ = load_teacher(path)
    assert isinstance(loaded, GraphQNetwork) and loaded.top_k == 2
    ck = torch.load(path, weights_only=True)
    # a checkpoint from before the encoder field holds an MLP and still loads as one
    mlp_tc = AccessTeacherConfig(hidden=(8,), encoder="mlp")
    save_teacher(path, build_q_network(mlp_tc), cfg=mlp_tc, env_config=access_config(SMALL), log=[])
    old = torch.load(path, weights_only=True)
    del old["encoder"]
    torch.save(old, path)
    assert not isinstance(load_teacher(path)[0], GraphQNetwork)
    # planted faults: an unknown encoder, and gnn weights labelled as an MLP
    torch.save({**ck, "encoder": "transformer"}, path)
    with pytest.raises(AccessConfigError, match="encoder 'transformer'; accepted: mlp, gnn"):
        load_teacher(path)
    torch.save({**ck, "encoder": "mlp"}, path)
    with pytest.raises(AccessConfigError, match="cannot load access teacher"):
        load_teacher(path)
