"""Private keys: checking what admins upload, and generating key pairs for hosts."""

from __future__ import annotations

import asyncio

import asyncssh

from shipyard.errors import ValidationFailed

SUPPORTED_ALGORITHMS = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384")


def _public_key(private_key: str, passphrase: str | None) -> str:
    try:
        key = asyncssh.import_private_key(private_key, passphrase)
    except asyncssh.KeyEncryptionError as exc:
        raise ValidationFailed(
            "the passphrase does not decrypt the private key", field="private_key_passphrase"
        ) from exc
    except (asyncssh.KeyImportError, ValueError) as exc:
        if "Passphrase must be specified" in str(exc):
            raise ValidationFailed(
                "the private key is encrypted: give its passphrase", field="private_key_passphrase"
            ) from exc
        raise ValidationFailed(
            "not a private key Shipyard can read (OpenSSH or PEM: ed25519, RSA, ECDSA)",
            field="private_key",
        ) from exc
    algorithm = key.get_algorithm()
    if not any(algorithm.startswith(prefix) for prefix in ("ssh-ed25519", "ssh-rsa", "ecdsa-")):
        raise ValidationFailed(
            f"key type {algorithm} is not supported; use ed25519, RSA or ECDSA",
            field="private_key",
        )
    return bytes(key.export_public_key()).decode().strip()


async def public_key_of(private_key: str, passphrase: str | None) -> str:
    """The OpenSSH public key line of ``private_key``; 422 naming the field at fault."""
    # Passphrase KDFs cost up to a second of CPU: keep them off the event loop.
    return await asyncio.to_thread(_public_key, private_key, passphrase)


def generate_key_pair(comment: str) -> tuple[str, str]:
    """A new ed25519 key pair: (OpenSSH private key, public key line)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    private = bytes(key.export_private_key("openssh")).decode()
    public = bytes(key.export_public_key()).decode().strip()
    return private, public
