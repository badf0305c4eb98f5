"""The payload codec: round trip, key rotation, tampering, settings parsing."""

from __future__ import annotations

import base64

import pytest
from temporalio.api.common.v1 import Payload

from codec import ENCODING, KEY_ID, AesGcmCodec, CodecError, parse_keys, payload_codec

OLD = {"k1": b"o" * 32}
NEW = {"k2": b"n" * 32}


def payload(text: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text)


async def test_round_trip_hides_the_data_and_names_the_key() -> None:
    codec = AesGcmCodec(NEW)
    [sealed] = await codec.encode([payload(b'"secret"')])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"k2"
    assert b"secret" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [payload(b'"secret"')]
    # A fresh nonce each time: the same payload never encrypts the same way twice.
    [again] = await codec.encode([payload(b'"secret"')])
    assert again.data != sealed.data


async def test_rotation_decodes_old_keys_and_encrypts_with_the_first() -> None:
    [old] = await AesGcmCodec(OLD).encode([payload(b"1")])
    rotated = AesGcmCodec({**NEW, **OLD})
    assert await rotated.decode([old]) == [payload(b"1")]
    [new] = await rotated.encode([payload(b"2")])
    assert new.metadata[KEY_ID] == b"k2"
    with pytest.raises(CodecError, match="'k1'"):
        await AesGcmCodec(NEW).decode([old])


async def test_tampering_and_a_swapped_key_id_fail_authentication() -> None:
    codec = AesGcmCodec({**NEW, "k3": b"n" * 32})
    [sealed] = await codec.encode([payload(b"x")])
    altered = Payload()
    altered.CopyFrom(sealed)
    altered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(CodecError, match="authentication"):
        await codec.decode([altered])
    # Same key bytes under another id: the id is authenticated too.
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID] = b"k3"
    with pytest.raises(CodecError):
        await codec.decode([relabelled])


async def test_payloads_in_clear_pass_through() -> None:
    assert await AesGcmCodec(NEW).decode([payload(b"1")]) == [payload(b"1")]


def test_key_settings() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    assert list(parse_keys(f"b:{key}, a:{key}")) == ["b", "a"]
    assert payload_codec(None) is None and payload_codec("") is None
    for bad, message in [
        ("nokey", "keyid:base64key"),
        (f"a:{key},a:{key}", "twice"),
        ("a:!!!", "base64"),
        ("a:" + base64.b64encode(b"short").decode(), "16, 24 or 32"),
        (",", "no key"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_keys(bad)
