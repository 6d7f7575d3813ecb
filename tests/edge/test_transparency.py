"""Transparency log: every tamper of the threat model is caught by verify with a pinned key.

The attacker can rewrite the log file and everything beside it (docs/audit.md). Each
tamper below is written the way such an attacker would, including recomputing the hash
chain; the verifier holds only the operator's public key and, where named, a tree head
published earlier.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.edge import keys, merkle
from pcnalloc.edge.audit import (
    HEAD_TYPE,
    AuditError,
    AuditLog,
    encode_record,
    record_hash,
    sign_tree_head,
    verify,
    write_tree_head,
)
from pcnalloc.edge.audit_proofs import (
    check_proof,
    latest_tree_head,
    prove_consistency,
    prove_inclusion,
)
from pcnalloc.edge.audit_verify import load_trusted_keys
from pcnalloc.edge.merkle import ProofError

N_EVENTS, EVERY = 23, 5  # heads at records 1 (header), 7, 13, 19, 25 and 29 (closing)


@pytest.fixture(scope="module")
def operator():
    return keys.generate_keypair()


@pytest.fixture(scope="module")
def attacker():
    return keys.generate_keypair()


def write_log(path: Path, priv, n: int = N_EVENTS, every: int = EVERY, **kw) -> Path:
    with AuditLog(
        path, private_key=priv, checkpoint_every=every, meta={"ruleset": "abc"}, **kw
    ) as log:
        for i in range(n):
            log.append("decision", {"request": {"id": i}, "action": i % 13, "flow_id": f"r0-{i}"})
    return path


def recs(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_bytes().splitlines()]


def put(p: Path, rs: list[dict]) -> None:
    """Write records as the attacker would: renumbered, re-chained, every hash recomputed."""
    out, prev = [], "0" * 64
    for i, r in enumerate(rs):
        r = {k: v for k, v in r.items() if k != "hash"} | {"seq": i, "prev": prev}
        line, prev = encode_record(r)
        out.append(line + b"\n")
    p.write_bytes(b"".join(out))


def put_raw(p: Path, rs: list[dict]) -> None:
    """Write records as they are (no re-chaining), each with its own (old) hash."""
    lines = []
    for r in rs:
        line, _ = encode_record({k: v for k, v in r.items() if k != "hash"})
        lines.append(
            line[: line.rindex(b',"hash":"')] + b',"hash":"' + r["hash"].encode() + b'"}\n'
        )
    p.write_bytes(b"".join(lines))


def leaves_of(p: Path) -> list[bytes]:
    return [merkle.leaf_hash(x) for x in p.read_bytes().splitlines()]


def heads_at(rs: list[dict]) -> list[int]:
    return [r["seq"] for r in rs if r["type"] == HEAD_TYPE]


def decision_at(rs: list[dict], part: str) -> int:
    idx = [i for i, r in enumerate(rs) if r["type"] == "decision"]
    return {"first": idx[1], "middle": idx[len(idx) // 2], "last": idx[-1]}[part]


def resign_all(rs: list[dict], priv) -> list[dict]:
    """Re-chain and recompute every tree head over the rewritten records with ``priv``."""
    out: list[dict] = []
    tree = merkle.Frontier()
    prev = "0" * 64
    for i, r in enumerate(rs):
        r = {k: v for k, v in r.items() if k != "hash"} | {"seq": i, "prev": prev}
        if r["type"] == HEAD_TYPE:
            r["body"] = sign_tree_head(priv, tree.size, tree.root(), r["body"]["timestamp_ms"])
        line, prev = encode_record(r)
        tree.append(merkle.leaf_hash(line))
        out.append(r | {"hash": prev})
    return out


# ---------------------------------------------------------------------------- tampers
# Each tamper edits the log at p (the operator's clean log) and may return a published head
# path (saved before the tamper) for verify; `expect` is the problem verify must report.


def t_edit(p, op, at):
    rs = recs(p)
    i = decision_at(rs, "middle")
    rs[i]["body"]["action"] = 99
    put_raw(p, rs)


def _rechain_edit(part):
    def t(p, op, at):
        rs = recs(p)
        rs[decision_at(rs, part)]["body"]["action"] = 99
        put(p, rs)

    return t


def t_rechain_and_recompute_roots(p, op, at):
    rs = recs(p)
    rs[decision_at(rs, "middle")]["body"]["action"] = 99
    # new roots, "signed" by the attacker but still naming the operator's key id
    kid = rs[1]["body"]["key_id"]
    put(
        p,
        [
            r | ({"body": {**r["body"], "key_id": kid}} if r["type"] == HEAD_TYPE else {})
            for r in resign_all(rs, at[0])
        ],
    )


def t_delete(p, op, at):
    rs = recs(p)
    del rs[decision_at(rs, "middle")]
    put_raw(p, rs)


def t_delete_rechain(p, op, at):
    rs = recs(p)
    del rs[decision_at(rs, "middle")]
    put(p, rs)


def t_insert(p, op, at):
    rs = recs(p)
    i = decision_at(rs, "middle")
    fake = {**rs[i], "body": {"request": {"id": -1}, "action": 0}}
    fake["hash"] = record_hash(fake)  # a well-formed record claiming an existing seq
    rs.insert(i + 1, fake)
    put_raw(p, rs)


def t_insert_rechain(p, op, at):
    rs = recs(p)
    i = decision_at(rs, "middle")
    rs.insert(i + 1, {**rs[i], "body": {"request": {"id": -1}, "action": 0}})
    put(p, rs)


def t_swap(p, op, at):
    rs = recs(p)
    i = decision_at(rs, "middle")
    rs[i], rs[i + 1] = rs[i + 1], rs[i]
    put_raw(p, rs)


def t_swap_rechain(p, op, at):
    rs = recs(p)
    i = decision_at(rs, "middle")
    rs[i]["body"], rs[i + 1]["body"] = rs[i + 1]["body"], rs[i]["body"]
    put(p, rs)


def _forged_append(claim_operator_key: bool):
    def t(p, op, at):
        rs = recs(p)
        rs += [
            {
                "type": "decision",
                "ts": rs[-1]["ts"],
                "body": {"request": {"id": 900 + k}, "action": 1},
            }
            for k in range(3)
        ]
        put(p, rs)  # records after the closing head, chained
        tree = leaves_of(p)
        head = sign_tree_head(at[0], len(tree), merkle.root(tree), 0)
        if claim_operator_key:
            head["key_id"] = rs[0]["body"]["key_id"]
        put(p, [*recs(p), {"type": HEAD_TYPE, "ts": rs[-1]["ts"], "body": head}])

    return t


def t_forged_append_unsigned(p, op, at):
    rs = recs(p)
    rs.append({"type": "decision", "ts": rs[-1]["ts"], "body": {"request": {"id": 900}}})
    put(p, rs)


def _publish(p, op) -> Path:
    return write_tree_head(p.with_name("published.json"), latest_tree_head(p, op[1]))


def t_truncate_with_head(p, op, at):
    pub = _publish(p, op)
    rs = recs(p)
    cut = heads_at(rs)[-3]  # back to an earlier signed head: a valid-looking shorter log
    put_raw(p, rs[: cut + 1])
    return pub


def t_truncate_without_head(p, op, at):
    pub = _publish(p, op)
    rs = recs(p)
    put_raw(p, rs[: heads_at(rs)[-2] + 3])  # the last heads and records cut
    return pub


def t_truncate_without_head_default(p, op, at):
    rs = recs(p)
    put_raw(p, rs[:-3])  # no published head: the missing closing head is the failure


def t_rewrite_before_published(p, op, at):
    """A fork: a second log by the same operator key replaces the published history."""
    pub = _publish(p, op)
    p.unlink()
    write_log(p, op[0], n=N_EVENTS + 6)  # same key, different records (timestamps, more)
    return pub


def t_full_rewrite_without_heads(p, op, at):
    rs = [r for r in recs(p) if r["type"] != HEAD_TYPE]
    rs[5]["body"]["action"] = 99
    put(p, rs)


def t_full_rewrite_header_says_unkeyed(p, op, at):
    rs = [r for r in recs(p) if r["type"] != HEAD_TYPE]
    rs[0]["body"] |= {"key_id": None, "checkpoint_every": 10**9}
    put(p, rs)


def t_drop_one_head(p, op, at):
    rs = recs(p)
    del rs[heads_at(rs)[2]]
    put(p, rs)


def t_drop_closing_head(p, op, at):
    put(p, recs(p)[:-1])


def t_key_swap(p, op, at):
    """Whole log written with another key, its public key put beside the log."""
    p.unlink()
    write_log(p, at[0])
    p.with_name(p.name + ".pub").write_bytes(keys.public_pem(at[1]))
    (p.parent / "pcnalloc.pub").write_bytes(keys.public_pem(at[1]))


def t_key_swap_claiming_operator(p, op, at):
    """Another key's log whose header and heads claim the operator's key id."""
    kid = keys.key_id(op[1])
    rs = resign_all(recs(p), at[0])
    rs[0]["body"]["key_id"] = kid
    rs = [
        r | ({"body": {**r["body"], "key_id": kid}} if r["type"] == HEAD_TYPE else {}) for r in rs
    ]
    put(p, rs)


def t_torn_tail(p, op, at):
    p.write_bytes(p.read_bytes()[:-20])


TAMPERS: list[tuple[str, Callable, str]] = [
    ("edit", t_edit, "edited"),
    ("edit_rechained_first", _rechain_edit("first"), "root_mismatch"),
    ("edit_rechained_middle", _rechain_edit("middle"), "root_mismatch"),
    ("edit_rechained_last", _rechain_edit("last"), "root_mismatch"),
    ("edit_rechained_roots_recomputed", t_rechain_and_recompute_roots, "forged_head"),
    ("delete", t_delete, "dropped"),
    ("delete_rechained", t_delete_rechain, "bad_head"),
    ("insert", t_insert, "inserted"),
    ("insert_rechained", t_insert_rechain, "gap"),
    ("swap", t_swap, "reordered"),
    ("swap_rechained", t_swap_rechain, "root_mismatch"),
    ("forged_append_other_key", _forged_append(False), "forged_head"),
    ("forged_append_claims_operator_key", _forged_append(True), "forged_head"),
    ("forged_append_unsigned", t_forged_append_unsigned, "unsigned_tail"),
    ("truncation_with_head", t_truncate_with_head, "truncated"),
    ("truncation_without_head", t_truncate_without_head, "truncated"),
    ("truncation_without_head_no_published", t_truncate_without_head_default, "unsigned_tail"),
    ("rewrite_before_published_head", t_rewrite_before_published, "inconsistent"),
    ("full_rewrite_without_heads", t_full_rewrite_without_heads, "unsigned_header"),
    ("full_rewrite_header_unkeyed", t_full_rewrite_header_says_unkeyed, "foreign_key"),
    ("drop_one_head", t_drop_one_head, "gap"),
    ("drop_closing_head", t_drop_closing_head, "unsigned_tail"),
    ("key_swap_with_key_beside_log", t_key_swap, "foreign_key"),
    ("key_swap_claiming_operator_key", t_key_swap_claiming_operator, "forged_head"),
    ("torn_tail", t_torn_tail, "torn_tail"),
]


@pytest.mark.parametrize(("name", "tamper", "expect"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_tamper_is_caught(tmp_path: Path, operator, attacker, name, tamper, expect) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    assert verify(p, operator[1]).ok
    before = p.read_bytes()
    pub = tamper(p, operator, attacker)
    assert p.read_bytes() != before
    # the published-head cases also allow a live (unsigned) tail: the head alone catches them
    r = verify(p, operator[1], published_head=pub, allow_unsigned_tail=pub is not None)
    assert not r.ok and r.problem == expect, str(r)
    assert "\n" not in str(r)
    # the CLI with the pinned key: exit 1 for tampering, 2 for a log of another key
    argv = ["audit", "verify", str(p), "--public-key", str(_pem(tmp_path, operator[1]))]
    if pub is not None:
        argv += ["--published-head", str(pub), "--allow-unsigned-tail"]
    code = _exit_code(argv)
    assert code == (2 if expect == "foreign_key" else 1)


def test_truncation_with_head_passes_without_the_published_head(
    tmp_path: Path, operator, attacker
) -> None:
    """Why a published head is needed: a log cut back to a signed head is a valid shorter log."""
    p = write_log(tmp_path / "a.log", operator[0])
    t_truncate_with_head(p, operator, attacker)
    assert verify(p, operator[1]).ok


def _pem(d: Path, pub) -> Path:
    out = d / "operator-pinned.pub"
    if not out.exists():
        out.write_bytes(keys.public_pem(pub))
    return out


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as ex:
        return int(ex.code or 0)


# ---------------------------------------------------------------------------- clean logs
def test_clean_log_passes_with_and_without_published_head(tmp_path: Path, operator) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    r = verify(p, operator[1])
    assert r.ok and r.records == 1 + N_EVENTS + 6 and r.checkpoints == 6
    assert r.unsigned_tail == 0 and r.key_id == keys.key_id(operator[1])
    assert heads_at(recs(p)) == [1, 7, 13, 19, 25, 29]
    pub = _publish(p, operator)
    # the log grows after the head was published: still consistent
    with AuditLog(p, private_key=operator[0]) as log:
        for i in range(9):
            log.append("decision", {"i": i})
    r = verify(p, operator[1], published_head=pub)
    assert r.ok and r.published_size == 29 and r.checkpoints == 8, str(r)
    # an older head is consistent too
    r = verify(p, operator[1], published_head=recs(p)[7]["body"])
    assert r.ok, str(r)


def test_live_log_with_unsigned_tail(tmp_path: Path, operator) -> None:
    p = tmp_path / "a.log"
    log = AuditLog(p, private_key=operator[0], checkpoint_every=EVERY)
    for i in range(7):
        log.append("decision", {"i": i})
    r = verify(p, operator[1], allow_unsigned_tail=True)
    assert r.ok and r.unsigned_tail == 2, str(r)
    assert verify(p, operator[1]).problem == "unsigned_tail"
    log.close()
    assert verify(p, operator[1]).ok


def test_trusted_keys_file_pins_by_name(tmp_path: Path, operator, attacker) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    pem = keys.public_pem(operator[1]).decode()
    (tmp_path / "att.pub").write_bytes(keys.public_pem(attacker[1]))
    tk = tmp_path / "trusted.yaml"
    tk.write_text(
        "operator: |\n" + "".join(f"  {ln}\n" for ln in pem.splitlines()) + "region-1: att.pub\n"
    )
    trusted = load_trusted_keys(tk)
    assert set(trusted) == {keys.key_id(operator[1]), keys.key_id(attacker[1])}
    assert verify(p, trusted).ok
    assert main(["audit", "verify", str(p), "--trusted-keys", str(tk)]) == 0


def test_time_cadence_is_enforced(tmp_path: Path, operator, monkeypatch) -> None:
    import pcnalloc.edge.audit as audit_mod

    now = [1_000_000.0]
    monkeypatch.setattr(audit_mod.time, "time", lambda: now[0])
    p = tmp_path / "a.log"
    with AuditLog(
        p, private_key=operator[0], checkpoint_every=1000, checkpoint_interval_s=10.0
    ) as log:
        for i in range(12):
            now[0] += 4.0
            log.append("decision", {"i": i})
    rs = recs(p)
    assert len(heads_at(rs)) >= 5  # every ~3 records by time, not 1000 by count
    assert verify(p, operator[1]).ok
    del rs[heads_at(rs)[2]]
    put(p, rs)
    r = verify(p, operator[1])
    assert r.problem == "gap" and "every 10 s" in r.message, str(r)


def test_writer_publishes_heads_and_resumes_with_header_cadence(
    tmp_path: Path, operator, attacker
) -> None:
    p, side = tmp_path / "a.log", tmp_path / "elsewhere" / "head.json"
    write_log(p, operator[0], n=3, head_path=side)
    assert json.loads(side.read_text())["tree_size"] == len(recs(p)) - 1
    with AuditLog(p, private_key=operator[0], checkpoint_every=2) as log:
        assert log.checkpoint_every == EVERY  # the header's cadence, which verify enforces
        for i in range(12):
            log.append("event", {"i": i})
    assert verify(p, operator[1], published_head=side).ok
    with pytest.raises(AuditError, match="signed by key"):
        AuditLog(p, private_key=attacker[0])
    assert not p.with_name(p.name + ".pub").exists()  # no key beside the log


# ---------------------------------------------------------------------------- proofs
def test_proofs_from_the_log_verify_and_bind_to_signed_heads(tmp_path: Path, operator) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    lines = p.read_bytes().splitlines()
    for i in (0, 5, 17, 28):
        proof = prove_inclusion(p, i)
        assert proof["tree_size"] == 29 and proof["leaf"].encode() == lines[i]
        assert "record" in check_proof(proof, operator[1])
    for m in (1, 7, 13, 29):
        assert "prefix" in check_proof(prove_consistency(p, m), operator[1])
    # a proof for a size without a head needs a head from the checker
    proof = prove_inclusion(p, 3, size=11)
    with pytest.raises(ProofError, match="no tree head"):
        check_proof(proof, operator[1])
    # an edited leaf in the proof fails
    proof = prove_inclusion(p, 5)
    proof["leaf"] = proof["leaf"].replace('"action":', '"action":1')
    proof.pop("leaf_hash")
    with pytest.raises(ProofError, match="different tree"):
        check_proof(proof, operator[1])


def _pinned_args(tmp_path: Path, pub) -> list[str]:
    return ["--public-key", str(_pem(tmp_path, pub))]


def test_cli_prove_consistency_head_and_check(tmp_path: Path, operator, capsys) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    key = _pinned_args(tmp_path, operator[1])
    head = tmp_path / "head.json"
    assert main(["audit", "head", str(p), *key, "--out", str(head)]) == 0
    capsys.readouterr()
    assert main(["audit", "prove", str(p), "--index", "4"]) == 0
    proof = json.loads(capsys.readouterr().out)
    assert proof["type"] == "inclusion" and proof["leaf_index"] == 4
    (tmp_path / "p.json").write_text(json.dumps(proof))
    assert main(["audit", "check-proof", str(tmp_path / "p.json"), *key, "--head", str(head)]) == 0
    assert (
        main(["audit", "consistency", str(p), "--old-size", "7", "--out", str(tmp_path / "c.json")])
        == 0
    )
    assert main(["audit", "check-proof", str(tmp_path / "c.json"), *key, "--head", str(head)]) == 0
    assert "prefix" in capsys.readouterr().out


# ---------------------------------------------------------------------------- bad input
def _one_line_exit_2(argv: list[str], capsys, *needles: str) -> str:
    capsys.readouterr()
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for n in needles:
        assert n in err, err
    return err


def test_unpinned_verify_is_refused(tmp_path: Path, operator, capsys) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    (tmp_path / "a.log.pub").write_bytes(keys.public_pem(operator[1]))  # even if one is beside
    _one_line_exit_2(["audit", "verify", str(p)], capsys, "pinned public key")
    _one_line_exit_2(["audit", "head", str(p)], capsys, "pinned public key")
    with pytest.raises(AuditError, match="pinned public key"):
        verify(p)


def test_log_from_another_key(tmp_path: Path, operator, attacker, capsys) -> None:
    p = write_log(tmp_path / "a.log", attacker[0])
    r = verify(p, operator[1])
    assert r.problem == "foreign_key" and keys.key_id(attacker[1]) in r.message
    _one_line_exit_2(
        ["audit", "verify", str(p), *_pinned_args(tmp_path, operator[1])], capsys, "foreign_key"
    )
    with pytest.raises(AuditError, match="does not verify"):
        latest_tree_head(p, operator[1])


def test_proof_for_a_different_tree(tmp_path: Path, operator, capsys) -> None:
    a = write_log(tmp_path / "a.log", operator[0])
    b = write_log(tmp_path / "b.log", operator[0], n=N_EVENTS + 2)
    head_b = write_tree_head(tmp_path / "head_b.json", latest_tree_head(b, operator[1]))
    proof = prove_inclusion(a, 4)
    # library: the path against another tree's root and size
    other = json.loads(head_b.read_text())
    with pytest.raises(ProofError):
        merkle.verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]),
            4,
            other["tree_size"],
            [bytes.fromhex(h) for h in proof["audit_path"]],
            bytes.fromhex(other["root"]),
        )
    with pytest.raises(ProofError, match="different tree"):
        check_proof(proof, operator[1], [head_b])
    # the same size but another log's root (a fork signed by the same key)
    c = write_log(tmp_path / "c.log", operator[0])
    head_c = write_tree_head(tmp_path / "head_c.json", latest_tree_head(c, operator[1]))
    with pytest.raises(ProofError, match="different tree"):
        check_proof(proof, operator[1], [head_c])
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps(proof))
    key = _pinned_args(tmp_path, operator[1])
    _one_line_exit_2(
        ["audit", "check-proof", str(pf), *key, "--head", str(head_c)], capsys, "different tree"
    )
    cons = prove_consistency(a, 7)
    cons["root"] = other["root"]
    cons["tree_head"] = None
    with pytest.raises(ProofError):
        check_proof(cons, operator[1], [head_b])


TRUSTED_BAD = [
    ("not_yaml", "operator: [unclosed\n", "not YAML"),
    ("a_list", "- one\n- two\n", "not a non-empty mapping"),
    ("empty", "", "not a non-empty mapping"),
    ("bad_name", "'../evil': x.pub\n", "not accepted"),
    ("not_text", "operator: 12\n", "not text"),
    (
        "not_pem",
        "operator: |\n  -----BEGIN PUBLIC KEY-----\n  AAAA\n  -----END PUBLIC KEY-----\n",
        "operator",
    ),
    ("missing_file", "operator: nowhere.pub\n", "does not exist"),
    ("duplicate", "a: op.pub\nb: op.pub\n", "same key"),
]


@pytest.mark.parametrize(("name", "text", "match"), TRUSTED_BAD, ids=[t[0] for t in TRUSTED_BAD])
def test_malformed_trusted_keys_file(tmp_path: Path, operator, capsys, name, text, match) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    (tmp_path / "op.pub").write_bytes(keys.public_pem(operator[1]))
    tk = tmp_path / "trusted.yaml"
    tk.write_text(text)
    with pytest.raises(AuditError, match=match):
        load_trusted_keys(tk)
    _one_line_exit_2(["audit", "verify", str(p), "--trusted-keys", str(tk)], capsys, "trusted-keys")


def test_bad_published_head_and_proof_arguments(tmp_path: Path, operator, attacker, capsys) -> None:
    p = write_log(tmp_path / "a.log", operator[0])
    key = _pinned_args(tmp_path, operator[1])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_exit_2(
        ["audit", "verify", str(p), *key, "--published-head", str(bad)], capsys, "not JSON"
    )
    other = write_log(tmp_path / "o.log", attacker[0])
    forged = write_tree_head(tmp_path / "f.json", latest_tree_head(other, attacker[1]))
    _one_line_exit_2(
        ["audit", "verify", str(p), *key, "--published-head", str(forged)], capsys, "not pinned"
    )
    edited = json.loads(_publish(p, operator).read_text()) | {"tree_size": 5}
    bad.write_text(json.dumps(edited))
    _one_line_exit_2(
        ["audit", "verify", str(p), *key, "--published-head", str(bad)], capsys, "signature"
    )
    _one_line_exit_2(["audit", "prove", str(p), "--index", "99"], capsys, "not in the tree")
    _one_line_exit_2(["audit", "consistency", str(p), "--old-size", "0"], capsys, "out of range")
    _one_line_exit_2(
        ["audit", "prove", str(tmp_path / "none.log"), "--index", "0"], capsys, "does not exist"
    )
