"""The gateway secret: made once, private, shared by gateways that start together; signing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import SecretStr

from app.secret import SECRET_FILE, load_secret, mac, open_token, sign_token
from config import Settings


def test_the_file_secret_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "fresh")
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_secret(settings), range(32)))
    assert len(keys) == 1
    path = tmp_path / "fresh" / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == [SECRET_FILE]  # no temporary left over
    assert load_secret(settings) == keys.pop()


def test_a_configured_secret_wins_and_is_never_shown(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SecretStr("s3cret-value"))
    assert load_secret(settings) == b"s3cret-value"
    assert not (tmp_path / SECRET_FILE).exists()
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings)


def test_tokens_and_macs() -> None:
    token = sign_token(b"k", b"raw bytes")
    assert open_token(b"k", token) == b"raw bytes"
    assert open_token(b"other key", token) is None
    for garbage in ("", "!!", "Zm9vYmFy", token[:-4] + "AAAA"):
        assert open_token(b"k", garbage) is None
    assert mac(b"k", "a", "bc") != mac(b"k", "ab", "c")
    assert mac(b"k", "\ud800") != mac(b"k", "x")  # lone surrogates do not raise
