"""`pcnalloc audit cosign|verify-cosigned`: members cosign a region's head into one file, an
auditor with the committee file checks a majority signed; planted forgeries are refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog
from pcnalloc.edge.committee import load_committee, verify_cosigned
from pcnalloc.edge.cosign import CosignError, cosign_message

NAMES = ("north", "south", "east", "west", "island")
REPUTATION = (1.0, 1.0, 1.0, 1.0, 0.2)  # island drops traffic: below mean × κ, not a member


@pytest.fixture
def regions(tmp_path: Path) -> dict:
    """Five regions with keys, a committee file, and north's log with a closing head."""
    kd = tmp_path / "keys"
    for n in NAMES:
        keys.save_keypair(kd, n)
    lines = ["# cosigning committee", "kappa: 1.0", "seed: 11", "regions:"]
    lines += [
        f"  - {{name: {n}, key: keys/{n}.pub, reputation: {r}}}"
        for n, r in zip(NAMES, REPUTATION, strict=True)
    ]
    com = tmp_path / "committee.yaml"
    com.write_text("\n".join(lines) + "\n")
    log = tmp_path / "north.log"
    with AuditLog(log, private_key=kd / "north.key", checkpoint_every=10) as w:
        for i in range(25):
            w.append("decision", {"i": i})
    return {"dir": tmp_path, "keys": kd, "committee": com, "log": log}


def _cosign(w: dict, member: str, into: Path, *, round_: int = 1, log=None, previous=None) -> int:
    argv = [
        "audit", "cosign", str(log or w["log"]), "--committee", str(w["committee"]),
        "--origin", "north", "--round", str(round_), "--key", str(w["keys"] / f"{member}.key"),
        "--into", str(into),
    ]  # fmt: skip
    if previous is not None:
        argv += ["--previous", str(previous)]
    return main(argv)


def _verify(w: dict, head: Path, log: Path | None = None) -> int:
    argv = ["audit", "verify-cosigned", str(head), "--committee", str(w["committee"])]
    return main(argv + (["--log", str(log)] if log else []))


def _line(capsys) -> str:
    cap = capsys.readouterr()
    text = (cap.out + cap.err).strip()
    assert text.count("\n") == 0 and "Traceback" not in text, text
    return text


def _append(log: Path, key: Path, n: int) -> None:
    with AuditLog(log, private_key=key) as w:
        for i in range(n):
            w.append("decision", {"more": i})


def test_members_cosign_and_the_auditor_verifies(regions, capsys) -> None:
    w, r1 = regions, regions["dir"] / "r1.json"
    assert _cosign(w, "south", r1) == 0
    assert "1 of 3 committee signatures (needs 2 to publish)" in _line(capsys)
    assert _verify(w, r1) == 1  # one signature is not a majority
    assert "a majority (2) is needed" in _line(capsys)
    assert _cosign(w, "east", r1) == 0 and "(published)" in _line(capsys)
    assert _verify(w, r1, w["log"]) == 0
    assert "published by 2 of 3 committee signatures" in _line(capsys)
    # a region outside the committee cannot sign; the file is untouched
    before = r1.read_bytes()
    assert _cosign(w, "island", r1) == 2 and "not in the committee" in _line(capsys)
    assert r1.read_bytes() == before
    # next round: the log grew honestly, members that cosigned r1 check it extends r1
    _append(w["log"], w["keys"] / "north.key", 12)
    r2 = w["dir"] / "r2.json"
    for m in ("south", "east", "west"):
        assert _cosign(w, m, r2, round_=2, previous=r1) == 0, capsys.readouterr()
    capsys.readouterr()
    assert _verify(w, r2, w["log"]) == 0 and "3 of 3" in _line(capsys)
    # a cosigned head of round 1 cannot be reused as another round's file
    assert _cosign(w, "west", r1, round_=2) == 2 and "holds the head" in _line(capsys)


def _rewrite(w: dict) -> Path:
    """North's key is stolen: record 3 rewritten, the whole log re-signed with north's key."""
    forged = w["dir"] / "forged.log"
    with AuditLog(forged, private_key=w["keys"] / "north.key", checkpoint_every=10) as f:
        for i in range(25):
            f.append("decision", {"i": -1 if i == 3 else i})
    return forged


def test_a_rewrite_is_refused_by_members_and_by_the_auditor(regions, capsys) -> None:
    w, r1 = regions, regions["dir"] / "r1.json"
    for m in ("south", "east", "west"):
        assert _cosign(w, m, r1) == 0
    capsys.readouterr()
    forged = _rewrite(w)
    _append(forged, w["keys"] / "north.key", 12)
    # every honest member that cosigned round 1 refuses to cosign the rewrite (exit 1)
    r2 = w["dir"] / "r2.json"
    for m in ("south", "east", "west"):
        assert _cosign(w, m, r2, round_=2, log=forged, previous=r1) == 1
        assert "refuses the log of north" in _line(capsys)
    assert not r2.exists()
    # the auditor holding the round-1 cosigned head sees the rewritten log does not extend it
    assert _verify(w, r1, forged) == 1
    assert "does not extend the cosigned head" in _line(capsys)
    # a truncated log neither
    cut = w["dir"] / "cut.log"
    cut.write_bytes(b"".join(w["log"].read_bytes().splitlines(keepends=True)[:12]))
    assert _verify(w, r1, cut) == 1 and "does not extend" in _line(capsys)


@pytest.mark.parametrize(
    "stolen",
    [
        ["south"],  # one committee key: a minority
        ["south", "island"],  # plus a key outside the committee
        ["south", "impostor-as-east"],  # plus a signature by a key not pinned, under east's id
    ],
)
def test_planted_minority_forgery_is_refused(regions, capsys, stolen) -> None:
    w = regions
    com = load_committee(w["committee"])
    forged = _rewrite(w)
    # the forger holds north's key and writes the cosigned file by hand, signatures included
    honest = w["dir"] / "honest.json"
    assert _cosign(w, "south", honest, log=forged) == 0  # to get the file's shape and proposer
    capsys.readouterr()
    h = json.loads(honest.read_text())
    msg = cosign_message(h["origin"], h["round"], h["sth"])
    sigs = {}
    for s in stolen:
        if s.startswith("impostor"):
            kid = keys.key_id(com.keys[NAMES.index("east")])
            sigs[kid] = base64.b64encode(keys.generate_keypair()[0].sign(msg)).decode()
        else:
            priv = keys.load_private_key(w["keys"] / f"{s}.key")
            sigs[keys.key_id(priv.public_key())] = base64.b64encode(priv.sign(msg)).decode()
    fake = w["dir"] / "fake.json"
    fake.write_text(json.dumps(h | {"cosigs": sigs}))
    assert _verify(w, fake) == 1
    assert "1 of 3 committee signatures; a majority (2) is needed" in _line(capsys)
    with pytest.raises(CosignError, match="majority"):
        verify_cosigned(fake, com)


def test_forged_origin_head_or_proposer_is_refused(regions, capsys) -> None:
    w, r1 = regions, regions["dir"] / "r1.json"
    for m in ("south", "east", "west"):
        assert _cosign(w, m, r1) == 0
    capsys.readouterr()
    h = json.loads(r1.read_text())
    bad = w["dir"] / "bad.json"
    bad.write_text(json.dumps(h | {"sth": h["sth"] | {"tree_size": 5}}))  # edited head
    assert _verify(w, bad) == 1 and "signature" in _line(capsys)
    bad.write_text(json.dumps(h | {"origin": 1}))  # north's head presented as south's
    assert _verify(w, bad) == 1 and "not pinned" in _line(capsys)
    com = load_committee(w["committee"])
    other = next(
        keys.key_id(com.keys[i]) for i in (1, 2, 3) if keys.key_id(com.keys[i]) != h["proposer"]
    )
    bad.write_text(json.dumps(h | {"proposer": other}))
    assert _verify(w, bad) == 1 and "proposer" in _line(capsys)


A, B = "{name: a, key: keys/north.pub}", "{name: b, key: keys/south.pub}"
HEAD = "kappa: 1\nseed: 1\n"
COMMITTEE_BAD = [
    ("not_yaml", "kappa: [1\n", "not YAML"),
    ("a_list", "- 1\n", "holds list"),
    ("no_kappa", f"seed: 1\nregions: [{A}, {B}]\n", "kappa"),
    ("one_region", f"{HEAD}regions: [{A}]\n", "regions"),
    (
        "bad_reputation",
        HEAD + "regions: [{name: a, key: keys/north.pub, reputation: 2}, " + B + "]\n",
        "reputation",
    ),
    ("bad_name", HEAD + "regions: [{name: ../a, key: keys/north.pub}, " + B + "]\n", "name"),
    ("unknown_field", f"{HEAD}quorum: 1\nregions: [{A}, {B}]\n", "quorum"),
    (
        "missing_key",
        HEAD + "regions: [{name: a, key: keys/none.pub}, " + B + "]\n",
        "does not exist",
    ),
    ("same_key", HEAD + "regions: [" + A + ", {name: b, key: keys/north.pub}]\n", "same key"),
    ("same_name", HEAD + "regions: [" + A + ", {name: a, key: keys/south.pub}]\n", "listed twice"),
]


@pytest.mark.parametrize(
    ("case", "text", "match"), COMMITTEE_BAD, ids=[c[0] for c in COMMITTEE_BAD]
)
def test_malformed_committee_file_is_one_line_exit_2(regions, capsys, case, text, match) -> None:
    w = regions
    w["committee"].write_text(text)
    out = w["dir"] / "r.json"
    assert _cosign(w, "south", out) == 2
    line = _line(capsys)
    assert "committee file" in line and match in line, line
    assert not out.exists()
    (w["dir"] / "h.json").write_text("{}")
    assert _verify(w, w["dir"] / "h.json") == 2
    assert match in _line(capsys)


def test_malformed_cosigned_head_and_unknown_origin(regions, capsys) -> None:
    w = regions
    bad = w["dir"] / "bad.json"
    for text in ("{not json", "[]", json.dumps({"format": "x"})):
        bad.write_text(text)
        assert _verify(w, bad) == 2 and "cosigned head" in _line(capsys)
    argv = ["audit", "cosign", str(w["log"]), "--committee", str(w["committee"]),
            "--origin", "atlantis", "--round", "1", "--key", str(w["keys"] / "south.key"),
            "--into", str(bad)]  # fmt: skip
    assert main(argv) == 2 and "accepted: north, south" in _line(capsys)
    stranger = keys.save_keypair(w["dir"] / "other", "stranger")[0]
    argv[argv.index("atlantis")] = "north"
    argv[argv.index(str(w["keys"] / "south.key"))] = str(stranger)
    assert main(argv) == 2 and "no region's key" in _line(capsys)
