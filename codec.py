"""Payload encryption: an AES-GCM payload codec, and the one function that builds the data
converter for the worker, the gateway, the replayer and the tests.

With `DURABLE_AGENT_PAYLOAD_KEYS` set, every payload our processes send to Temporal (workflow
inputs and results, activity inputs and results, signals, updates, queries, memos, failures'
details) is encrypted before it leaves the process, so Temporal's history holds no query, tool
result or answer in clear. Each encrypted payload says which key made it
(metadata `encryption-key-id`); decoding picks that key, so runs recorded under an old key stay
readable after a rotation for as long as the old key is listed. A payload without our encoding
passes through untouched: runs recorded before encryption was turned on replay as they did.

Search attributes are not payloads a codec sees (Temporal must index them): `RunStatus`,
`RunStage`, `RunKind` and `Tenant` stay readable, and hold no user text.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(ValueError):
    """A payload that cannot be decrypted: unknown key id, or altered data."""


class AesGcmCodec(PayloadCodec):
    """AES-GCM over the whole serialized payload (its metadata included), a fresh 96-bit
    nonce per payload, the key id as associated data (so a payload cannot be passed off as
    another key's)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        """`keys` in order of preference: the first encrypts, all decrypt."""
        if not keys:
            raise ValueError("at least one key is needed")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_id = next(iter(keys))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self.key_id]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self.key_id.encode())
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()},
                    data=nonce + sealed,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # recorded in clear, before encryption was on
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecError(
                    f"payload encrypted with key {key_id!r}, which is not among "
                    "DURABLE_AGENT_PAYLOAD_KEYS"
                )
            data = payload.data
            try:
                plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
            except Exception as exc:  # cryptography's InvalidTag: altered or not ours
                raise CodecError(f"payload under key {key_id!r} failed authentication") from exc
            decoded.append(Payload.FromString(plain))
        return decoded


def parse_keys(spec: str) -> dict[str, bytes]:
    """`"k2:<base64>,k1:<base64>"` -> `{"k2": b"...", "k1": b"..."}` (order kept)."""
    keys: dict[str, bytes] = {}
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep or not key_id:
            raise ValueError("DURABLE_AGENT_PAYLOAD_KEYS must look like 'keyid:base64key,...'")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"payload key {key_id!r} is not valid base64") from None
        if len(key) not in (16, 24, 32):
            raise ValueError(
                f"payload key {key_id!r} is {len(key)} bytes; AES needs 16, 24 or 32 "
                "(make one: python -c 'import os,base64; print(base64.b64encode(os.urandom(32))"
                ".decode())')"
            )
        if key_id in keys:
            raise ValueError(f"payload key id {key_id!r} is listed twice")
        keys[key_id] = key
    if not keys:
        raise ValueError("DURABLE_AGENT_PAYLOAD_KEYS lists no key")
    return keys


def payload_codec(payload_keys: str | None) -> AesGcmCodec | None:
    """The codec the settings ask for (`Settings.payload_keys`), or None: payloads in clear."""
    if not payload_keys:
        return None
    return AesGcmCodec(parse_keys(payload_keys))


def data_converter(codec: PayloadCodec | None = None) -> DataConverter:
    """Pydantic models on the wire, encrypted when a codec is given."""
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
