"""The light install: edge verbs without the training stack, and one-line missing-extra errors.

Each check runs in a fresh interpreter whose import system hides the packages of the ``full``
extra (and the other optional extras), as if they were not installed: ``import torch`` raises
``ModuleNotFoundError`` and ``importlib.util.find_spec("torch")`` is None. A real install of
the light set in a throwaway venv is measured in docs/install.md.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog

FULL = ("torch", "torch_geometric", "pandapower", "pandas", "pettingzoo", "matplotlib")
FULL += ("pyarrow", "onnx", "matpowercaseframes")
OTHER_EXTRAS = ("ray", "simbench", "stable_baselines3", "sb3_contrib", "tensorboard")
HIDDEN = FULL + OTHER_EXTRAS
TOKEN = "light-install-token-0123456789"

HIDE = """
import sys
class _Hide:
    '''sys.meta_path wrapper: the named top-level packages are not found at all.'''
    def __init__(self, finders, names):
        self.finders, self.names = finders, frozenset(names)
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            return None
        for f in self.finders:
            spec = f.find_spec(name, path, target) if hasattr(f, "find_spec") else None
            if spec is not None:
                return spec
        return None
    def invalidate_caches(self):
        for f in self.finders:
            getattr(f, "invalidate_caches", lambda: None)()
sys.meta_path[:] = [_Hide(list(sys.meta_path), {names!r})]
"""


def hidden_python(code: str, names: tuple[str, ...] = HIDDEN) -> str:
    """``code`` preceded by the import hook that hides ``names``."""
    return HIDE.format(names=sorted(names)) + code


def run_hidden(
    code: str, *args: str, names: tuple[str, ...] = HIDDEN, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", hidden_python(code, names), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PCNALLOC_CACHE_DIR": "off", **(env or {})},
    )


CLI = "from pcnalloc.cli import main\nsys.exit(main(sys.argv[1:]))\n"


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, small_pool_graph_file: Path) -> Path:
    """The tiny ring as one region: a pcnalloc graph JSON needs no pandapower to build."""
    data = json.loads(small_pool_graph_file.read_text())
    for site in data["sites"]:
        site.pop("region")
    p = tmp_path_factory.mktemp("graphs") / "tiny_one_region.json"
    p.write_text(json.dumps(data))
    return p


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keys.save_keypair(tmp_path_factory.mktemp("keys"), "edge")


def compile_random_student(
    cfg: EnvConfig, private_key: Path, out: Path, *, ship_network: bool = False
) -> Path:
    """A random MLP student compiled and signed here, where torch is installed."""
    import torch

    from pcnalloc.envs import PowerCommEnv
    from pcnalloc.export.compile import compile_student

    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=5)
    rows = []
    for _ in range(60):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    torch.manual_seed(3)
    m = torch.nn.Sequential(
        torch.nn.Linear(rows[0].shape[0], 32), torch.nn.ReLU(), torch.nn.Linear(32, cfg.n_actions)
    )
    m.input_key = "compact"
    net = env.net if ship_network else None
    compile_student(
        m.eval(), np.stack(rows), env_config=cfg, private_key=private_key, out_dir=out, network=net
    )
    return out


@pytest.fixture(scope="module")
def artifact(
    tmp_path_factory: pytest.TempPathFactory,
    make_config: Callable[..., EnvConfig],
    graph: Path,
    signer: tuple[Path, Path],
) -> Path:
    cfg = make_config(graph, events="calm", traffic={"warm_start": False})
    return compile_random_student(cfg, signer[0], tmp_path_factory.mktemp("edge") / "artifact")


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory, signer: tuple[Path, Path]) -> Path:
    log = tmp_path_factory.mktemp("audit") / "decisions.log"
    with AuditLog(log, private_key=signer[0], checkpoint_every=2) as a:
        for i in range(5):
            a.append("event", {"i": i})
    return log


# ---------------------------------------------------------------------------- the hook itself
def test_the_hook_hides_a_package_as_if_not_installed() -> None:
    """Planted fault for every check below: with the hook, importing torch fails."""
    out = run_hidden(
        "import importlib.util\n"
        "print(importlib.util.find_spec('torch'), importlib.util.find_spec('numpy') is not None)\n"
        "import torch\n"
    )
    assert out.returncode == 1
    assert out.stdout.split() == ["None", "True"]
    assert "No module named 'torch'" in out.stderr


# ---------------------------------------------------------------------------- edge verbs
EDGE_SCRIPT = """
import json
from pcnalloc.cli import main
art, pub, log, token = sys.argv[1:5]
res = {}
res["artifact verify"] = main(["artifact", "verify", art, "--public-key", pub])
res["audit verify"] = main(["audit", "verify", log, "--public-key", pub])
from fastapi.testclient import TestClient
from pcnalloc.edge.service import ServiceConfig, create_app
app = create_app(ServiceConfig(artifact=art, public_key=pub), token)
h = {"Authorization": "Bearer " + token}
body = {"service_class": "scada", "src": "B", "dst": "A", "holding_s": 60.0}
with TestClient(app) as client:
    r = client.post("/v1/allocate", json=body, headers=h)
    res["allocate"] = [r.status_code, r.json().get("outcome")]
    res["metrics"] = client.get("/v1/metrics", headers=h).json()["decisions"]
res["decided_by"] = type(app.state.live.agent).__name__
res["loaded"] = sorted({m.partition(".")[0] for m in sys.modules} & set(HIDDEN))
print("RESULT " + json.dumps(res))
"""


def test_edge_verbs_and_agent_run_without_the_training_stack(
    artifact: Path, signer: tuple[Path, Path], audit_log: Path
) -> None:
    code = f"HIDDEN = {HIDDEN!r}\n" + EDGE_SCRIPT
    out = run_hidden(code, str(artifact), str(signer[1]), str(audit_log), TOKEN)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert res["artifact verify"] == 0 and res["audit verify"] == 0
    assert res["allocate"][0] == 200 and res["allocate"][1] is not None
    assert res["metrics"] == 1 and res["decided_by"] == "EdgeAgent"
    assert res["loaded"] == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_verb_answers_without_the_training_stack(
    artifact: Path, signer: tuple[Path, Path]
) -> None:
    port = _free_port()
    args = ["serve", "--artifact", str(artifact), "--public-key", str(signer[1])]
    args += ["--region", "0", "--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "PCNALLOC_CACHE_DIR": "off", "PCNALLOC_SERVE_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-c", hidden_python(CLI), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        health = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/v1/health"
                with urllib.request.urlopen(url, timeout=2) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.3)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "timeout"
        assert health["status"] == "ok" and health["region_sites"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_service_on_a_grid_case_artifact_with_its_network_needs_no_pandapower(
    tmp_path: Path, make_config: Callable[..., EnvConfig], signer: tuple[Path, Path]
) -> None:
    cfg = make_config("case14", events="calm", traffic={"warm_start": False})
    art = compile_random_student(cfg, signer[0], tmp_path / "artifact", ship_network=True)
    assert (art / "network.npz").is_file()
    code = (
        "from pcnalloc.edge.service import ServiceConfig, create_app\n"
        "app = create_app(ServiceConfig(artifact=sys.argv[1], public_key=sys.argv[2],"
        " region=None), sys.argv[3])\n"
        "print('SITES', app.state.live.net.n_sites)\n"
    )
    out = run_hidden(code, str(art), str(signer[1]), TOKEN)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SITES" in out.stdout


# ---------------------------------------------------------------------------- missing extras
def _one_line_install(out: subprocess.CompletedProcess[str], extra: str) -> None:
    err = out.stderr.strip()
    assert out.returncode == 2, err[-2000:]
    assert "\n" not in err and "Traceback" not in err, err[-2000:]
    assert err.startswith("error: ") and f"pcnalloc[{extra}]" in err, err


def test_serve_without_its_extra_says_install_edge(tmp_path: Path) -> None:
    args = ["serve", "--artifact", str(tmp_path), "--public-key", str(tmp_path / "k.pub")]
    out = run_hidden(CLI, *args, "--region", "0", "--port", "8000", names=("uvicorn", "fastapi"))
    _one_line_install(out, "edge")
    assert "pcnalloc serve needs 'uvicorn'" in out.stderr


def test_training_verbs_without_torch_say_install_full(tmp_path: Path, graph: Path) -> None:
    out = run_hidden(
        CLI,
        *("teacher", "train", "--case", str(graph), "--steps", "10"),
        *("--out", str(tmp_path / "t")),
    )
    _one_line_install(out, "full")
    assert "pcnalloc teacher train needs 'torch'" in out.stderr


def test_grid_case_without_pandapower_says_install_full() -> None:
    out = run_hidden(CLI, "network", "show", "case14")
    _one_line_install(out, "full")


def test_ray_executor_without_ray_says_install_distributed(tmp_path: Path, graph: Path) -> None:
    args = ["evaluate", "--policies", "ksp-ff", "--cases", str(graph), "--loads", "1"]
    args += ["--seeds", "0", "--requests", "5", "--executor", "ray", "--out", str(tmp_path / "e")]
    out = run_hidden(CLI, *args, names=("ray",))
    assert out.returncode == 2 and "\n" not in out.stderr.strip(), out.stderr[-2000:]
    assert "'pcnalloc[distributed]'" in out.stderr


def test_sb3_policy_without_sb3_says_install_sb3(tmp_path: Path, graph: Path) -> None:
    import zipfile

    model = tmp_path / "ppo.zip"
    with zipfile.ZipFile(model, "w") as zf:
        data = {"policy_class": {"__module__": "sb3_contrib.common.maskable.policies"}}
        zf.writestr("data", json.dumps(data))
    args = ["simulate", "--case", str(graph), "--policy", f"sb3@{model}", "--requests", "5"]
    out = run_hidden(CLI, *args, names=("sb3_contrib", "stable_baselines3"))
    _one_line_install(out, "sb3")


def test_simbench_profile_without_simbench_says_install_data(tmp_path: Path, graph: Path) -> None:
    cfg = tmp_path / "env.yaml"
    cfg.write_text(f"network: {{case: {json.dumps(str(graph))}}}\ntraffic: {{profile: simbench}}\n")
    out = run_hidden(CLI, "simulate", "--config", str(cfg), "--requests", "5", names=("simbench",))
    last = out.stderr.strip().splitlines()[-1]  # after the progress bar's first frame
    assert out.returncode == 2 and last.startswith("error: "), out.stderr[-2000:]
    assert "'pcnalloc[data]'" in last and "Traceback" not in out.stderr


def test_tensorboard_flag_without_the_package_says_install_tensorboard(
    tmp_path: Path, graph: Path
) -> None:
    args = ["teacher", "train", "--case", str(graph), "--steps", "10", "--out", str(tmp_path / "t")]
    out = run_hidden(CLI, *args, "--tensorboard", str(tmp_path / "tb"), names=("tensorboard",))
    _one_line_install(out, "tensorboard")
    assert not (tmp_path / "t").exists() and not (tmp_path / "tb").exists()
