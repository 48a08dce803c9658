"""Secrets at rest: Fernet encryption with several keys, so keys can be rotated."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shipyard.config import Settings

KEY_FILE_NAME = "secret.keys"


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


class Keyring:
    """Encrypts with the newest key and decrypts with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one secret key is required")
        try:
            self._fernets = [Fernet(key.encode()) for key in keys]
        except ValueError as exc:
            raise ValueError(
                "a secret key is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from exc
        self._multi = MultiFernet(self._fernets)
        self.keys = tuple(keys)

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._multi.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptionError(
                "secret cannot be decrypted with the configured keys"
            ) from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt ``ciphertext`` with the newest key."""
        try:
            return self._multi.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptionError(
                "secret cannot be decrypted with the configured keys"
            ) from exc


def generate_key() -> str:
    return Fernet.generate_key().decode()


def key_file_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE_NAME


def read_key_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Write keys (newest first) to ``path`` with 0600 permissions, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def load_keyring(settings: Settings) -> Keyring:
    """Build the keyring from ``SHIPYARD_SECRET_KEY`` or the data directory's key file."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    return _load_keyring(secret, str(settings.data_dir))


@lru_cache(maxsize=8)
def _load_keyring(secret_key: str | None, data_dir: str) -> Keyring:
    if secret_key:
        return Keyring([key.strip() for key in secret_key.split(",") if key.strip()])
    path = key_file_path(Path(data_dir))
    if not path.exists():
        write_key_file(path, [generate_key()])
    return Keyring(read_key_file(path))


def reset_keyring_cache() -> None:
    _load_keyring.cache_clear()


# Secret values inside JSON documents (e.g. cicd_providers.config) are stored as {"$encrypted": ...}.
ENCRYPTED_MARKER = "$encrypted"


def seal(plaintext: str, keyring: Keyring) -> dict[str, str]:
    return {ENCRYPTED_MARKER: keyring.encrypt(plaintext)}


def is_sealed(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {ENCRYPTED_MARKER}


def unseal(value: dict[str, str], keyring: Keyring) -> str:
    return keyring.decrypt(value[ENCRYPTED_MARKER])


def rotate_sealed(document: object, keyring: Keyring) -> object:
    """Return ``document`` with every sealed value re-encrypted with the newest key."""
    if is_sealed(document):
        assert isinstance(document, dict)
        return {ENCRYPTED_MARKER: keyring.rotate(document[ENCRYPTED_MARKER])}
    if isinstance(document, dict):
        return {key: rotate_sealed(value, keyring) for key, value in document.items()}
    if isinstance(document, list):
        return [rotate_sealed(value, keyring) for value in document]
    return document
