"""Replace known secret values with *** before output is stored or shown."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# Shorter values would mask ordinary words; such secrets are refused at the source instead.
MIN_SECRET_LENGTH = 4


class Redactor:
    def __init__(self, secrets: Iterable[str | None]) -> None:
        pieces: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            # A multi-line secret (a private key) can surface one line at a time.
            for piece in (secret, *secret.splitlines()):
                piece = piece.strip("\r\n")
                if len(piece.strip()) >= MIN_SECRET_LENGTH:
                    pieces.add(piece)
        ordered = sorted(pieces, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(piece) for piece in ordered)) if ordered else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
