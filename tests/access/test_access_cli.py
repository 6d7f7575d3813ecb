"""`pcnalloc access`: bad input is one line and exit 2; a tiny simulate writes JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcnalloc.cli import main


@pytest.mark.parametrize(
    "args",
    [
        ["access", "simulate", "--grid", "atlantis"],
        ["access", "simulate", "--devices", "500"],
        ["access", "simulate", "--policies", "nope"],
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_simulate_writes_json_and_png(tmp_path: Path) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(
        "devices: 8\nplc_subchannels: 8\ng5_subchannels: 3\nquota: 2\nepochs: 2\n"
        "slots_per_epoch: 2\n"
    )
    out, png = tmp_path / "r.json", tmp_path / "cdf.png"
    rc = main(
        [
            "access",
            "simulate",
            "--policies",
            "matching,raom",
            "--config",
            str(cfg),
            "--json",
            str(out),
            "--png",
            str(png),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert [r["policy"] for r in data["runs"]] == ["matching", "raom"]
    assert png.stat().st_size > 1000


def test_simbench_code_without_the_data_extra_names_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    if importlib.util.find_spec("simbench") is not None:
        pytest.skip("simbench is installed: the code loads instead")
    assert main(["access", "simulate", "--grid", "1-MV-rural--0-sw", "--policies", "all-plc"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pcnalloc[data]" in err and "\n" not in err
