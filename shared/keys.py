"""Key files for sealed files: generating them (``streamsend keygen``), reading them, and naming them.

A downloader (recipient) holds an X25519 key pair: uploaders encrypt to its public key, it decrypts with the
private one. An uploader (signer) holds an Ed25519 key pair: it signs with the private key, downloaders that
trust it check with the public one. Every key is a PEM file (PKCS#8 for private keys, SubjectPublicKeyInfo
for public keys), as ``openssl pkey`` reads and writes them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from streamsend.shared.errors import SettingsError

T = TypeVar("T")

RECIPIENT_KEY: Final = "recipient.key"
RECIPIENT_PUB: Final = "recipient.pub"
SIGNER_KEY: Final = "signer.key"
SIGNER_PUB: Final = "signer.pub"
KEY_ID_BYTES: Final = 8


def raw_public(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: X25519PublicKey | Ed25519PublicKey) -> str:
    """A short name for a public key: what a sealed record names its recipients by, and logs show."""
    return hashlib.sha256(raw_public(key)).digest()[:KEY_ID_BYTES].hex()


@dataclass(frozen=True, slots=True)
class Recipient:
    """A downloader's public key: files are encrypted to it."""

    key: X25519PublicKey

    @property
    def id(self) -> str:
        return key_id(self.key)


@dataclass(frozen=True, slots=True)
class Identity:
    """A downloader's private key: it opens files encrypted to its public key."""

    key: X25519PrivateKey

    @property
    def id(self) -> str:
        return key_id(self.key.public_key())


def _read_pem(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise ValueError(f"{path} is not a PEM file")
    return data


def load_private(path: Path) -> X25519PrivateKey | Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read_pem(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, X25519PrivateKey | Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__.removeprefix('_')}, not an X25519 or Ed25519 key")
    return key


def load_public(path: Path) -> X25519PublicKey | Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read_pem(path))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, X25519PublicKey | Ed25519PublicKey):
        raise ValueError(f"{path} holds a {type(key).__name__.removeprefix('_')}, not an X25519 or Ed25519 key")
    return key


def load_recipient(path: Path) -> Recipient:
    key = load_public(path)
    if not isinstance(key, X25519PublicKey):
        raise ValueError(f"{path} is an Ed25519 (signing) key; a recipient key is X25519 ({RECIPIENT_PUB})")
    return Recipient(key)


def load_identity(path: Path) -> Identity:
    key = load_private(path)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{path} is an Ed25519 (signing) key; a decryption key is X25519 ({RECIPIENT_KEY})")
    return Identity(key)


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    key = load_private(path)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is an X25519 (decryption) key; a signing key is Ed25519 ({SIGNER_KEY})")
    return key


def load_verify_key(path: Path) -> Ed25519PublicKey:
    key = load_public(path)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is an X25519 (recipient) key; an uploader's key is Ed25519 ({SIGNER_PUB})")
    return key


def _pem_private(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_public(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate(folder: Path, prefix: str = "") -> list[Path]:
    """Write a recipient (X25519) and a signer (Ed25519) key pair into ``folder``, every file 0600; never
    overwrites a key (FileExistsError names it). Returns the files written, private keys first."""
    recipient = X25519PrivateKey.generate()
    signer = Ed25519PrivateKey.generate()
    files = {
        prefix + RECIPIENT_KEY: _pem_private(recipient),
        prefix + SIGNER_KEY: _pem_private(signer),
        prefix + RECIPIENT_PUB: pem_public(recipient.public_key()),
        prefix + SIGNER_PUB: pem_public(signer.public_key()),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        if (folder / name).exists():
            raise FileExistsError(f"{folder / name} exists: keys are never overwritten")
    written = []
    for name, data in files.items():
        # O_EXCL: a file that appeared meanwhile is not overwritten; 0600 from the start, not after a chmod.
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        written.append(folder / name)
    return written


def loading(setting: str, load: Callable[[Path], T], path: Path) -> T:
    """``load(path)``, a key file read at start: what is wrong with it names the setting that named it."""
    try:
        return load(path)
    except ValueError as exc:
        raise SettingsError(f"invalid setting {setting}: {exc}") from None
