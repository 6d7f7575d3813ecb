"""Passphrase-encrypted private keys: created by `keys new`, read back from a passphrase file,
the environment or the terminal; a wrong or missing passphrase is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog, verify

SECRET = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _no_passphrase_env(monkeypatch) -> None:
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)
    monkeypatch.delenv(keys.PASSPHRASE_FILE_ENV, raising=False)


def _secret_file(tmp_path: Path, text: str = SECRET + "\n") -> Path:
    f = tmp_path / "pass.txt"
    f.write_text(text)
    f.chmod(0o600)
    return f


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_keys_new_with_passphrase_file_encrypts(tmp_path: Path, monkeypatch, capsys) -> None:
    pf = _secret_file(tmp_path)
    assert main(["keys", "new", "--out", str(tmp_path / "k"), "--passphrase-file", str(pf)]) == 0
    assert "passphrase-encrypted" in capsys.readouterr().out
    priv_p = tmp_path / "k" / "pcnalloc.key"
    assert b"ENCRYPTED PRIVATE KEY" in priv_p.read_bytes()
    assert priv_p.stat().st_mode & 0o777 == 0o600
    pub = keys.load_public_key(tmp_path / "k" / "pcnalloc.pub")
    # the right passphrase, by argument, file variable or text variable
    k1 = keys.load_private_key(priv_p, SECRET.encode())
    monkeypatch.setenv(keys.PASSPHRASE_FILE_ENV, str(pf))
    k2 = keys.load_private_key(priv_p)
    monkeypatch.delenv(keys.PASSPHRASE_FILE_ENV)
    monkeypatch.setenv(keys.PASSPHRASE_ENV, SECRET)
    k3 = keys.load_private_key(priv_p)
    for k in (k1, k2, k3):
        assert keys.key_id(k.public_key()) == keys.key_id(pub)
    # an encrypted key signs an audit log like any other
    with AuditLog(tmp_path / "a.log", private_key=priv_p) as log:
        log.append("event", {"x": 1})
    assert verify(tmp_path / "a.log", pub).ok


def test_wrong_or_missing_passphrase_is_one_line_exit_2(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    pf = _secret_file(tmp_path)
    priv_p, _ = keys.save_keypair(tmp_path / "k", passphrase=SECRET.encode())
    with pytest.raises(keys.KeyFileError, match="wrong passphrase"):
        keys.load_private_key(priv_p, b"not it")
    monkeypatch.setattr("sys.stdin", None)  # no terminal to ask on
    with pytest.raises(keys.KeyFileError, match="passphrase-encrypted; set"):
        keys.load_private_key(priv_p)
    # through the CLI: a repair that signs with the key loads it first
    log = tmp_path / "a.log"
    with AuditLog(log, private_key=keys.load_private_key(priv_p, SECRET.encode())) as w:
        w.append("event", {"x": 1})
    log.write_bytes(log.read_bytes() + b'{"torn')
    pub = tmp_path / "k" / "pcnalloc.pub"
    argv = ["audit", "repair", str(log), "--public-key", str(pub), "--key", str(priv_p)]
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "not it")
    assert main(argv) == 2
    assert "wrong passphrase" in _one_line(capsys)
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    assert main(argv) == 2
    assert "passphrase-encrypted" in _one_line(capsys)
    monkeypatch.setenv(keys.PASSPHRASE_FILE_ENV, str(pf))
    assert main(argv) == 0
    assert verify(log, keys.load_public_key(pub)).ok
    assert pf.read_text() == SECRET + "\n" and pf.is_file()


def test_unencrypted_key_ignores_the_passphrase(tmp_path: Path, monkeypatch) -> None:
    priv_p, _ = keys.save_keypair(tmp_path / "k")
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "unused")
    assert keys.load_private_key(priv_p, b"unused") is not None


def test_keys_new_passphrase_sources(tmp_path: Path, monkeypatch, capsys) -> None:
    empty = _secret_file(tmp_path, "\n")
    assert main(["keys", "new", "--out", str(tmp_path / "a"), "--passphrase-file", str(empty)]) == 2
    assert "is empty" in _one_line(capsys)
    assert not (tmp_path / "a").exists()
    missing = tmp_path / "none.txt"
    assert (
        main(["keys", "new", "--out", str(tmp_path / "a"), "--passphrase-file", str(missing)]) == 2
    )
    assert "does not exist" in _one_line(capsys)
    monkeypatch.setattr("sys.stdin", None)
    assert main(["keys", "new", "--out", str(tmp_path / "a"), "--passphrase"]) == 2
    assert "needs" in _one_line(capsys)
    assert not (tmp_path / "a").exists()
    monkeypatch.setenv(keys.PASSPHRASE_ENV, SECRET)
    assert main(["keys", "new", "--out", str(tmp_path / "b"), "--passphrase"]) == 0
    assert keys.load_private_key(tmp_path / "b" / "pcnalloc.key") is not None
    assert b"ENCRYPTED" in (tmp_path / "b" / "pcnalloc.key").read_bytes()


def test_terminal_prompt(tmp_path: Path, monkeypatch, capsys) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    answers = iter([SECRET, SECRET, SECRET, "typo"])
    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["keys", "new", "--out", str(tmp_path / "k"), "--passphrase"]) == 0
    assert keys.load_private_key(tmp_path / "k" / "pcnalloc.key") is not None
    answers = iter([SECRET, "typo"])
    assert main(["keys", "new", "--out", str(tmp_path / "j"), "--passphrase"]) == 2
    assert "differ" in _one_line(capsys)
    assert not (tmp_path / "j").exists()
