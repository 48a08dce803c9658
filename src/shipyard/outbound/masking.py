"""The one secret masker: known secret values become ``***`` in anything shown or stored."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# Shorter values would mask ordinary words; such secrets are refused at the source instead.
MIN_SECRET_LENGTH = 4


class Masker:
    """Replaces every known secret, longest first, in one regex pass.

    A multi-line secret (a private key) can surface one line at a time, so each of its lines is
    masked too. Values shorter than ``min_length`` (ignoring surrounding blanks) are left alone.
    """

    __slots__ = ("_pattern", "pieces")

    def __init__(
        self, secrets: Iterable[str | None], *, min_length: int = MIN_SECRET_LENGTH
    ) -> None:
        pieces: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            for piece in (secret, *secret.splitlines()):
                piece = piece.strip("\r\n")
                if len(piece.strip()) >= min_length:
                    pieces.add(piece)
        self.pieces = tuple(sorted(pieces, key=len, reverse=True))
        self._pattern = (
            re.compile("|".join(re.escape(piece) for piece in self.pieces)) if self.pieces else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def __bool__(self) -> bool:
        return self._pattern is not None


NO_SECRETS = Masker(())


def mask(text: str, secrets: Iterable[str | None], *, min_length: int = MIN_SECRET_LENGTH) -> str:
    """``text`` with ``secrets`` masked (builds a :class:`Masker`; keep one for repeated use)."""
    return Masker(secrets, min_length=min_length)(text)
