"""Replace known secret values with *** before output is stored or shown.

The masking itself is the shared :class:`shipyard.outbound.masking.Masker`. What deployments add
is output that arrives cut: a line longer than the executor's limit (64 KiB) comes in pieces,
and a secret may straddle the cut. :meth:`Redactor.mask_prefix` masks a piece while holding back
its last characters (fewer than the longest secret), which are masked with the next piece.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from shipyard.outbound.masking import MASK, MIN_SECRET_LENGTH, Masker

__all__ = ["MASK", "MIN_SECRET_LENGTH", "Redactor"]


class Redactor:
    """Masks a deployment's secrets in whole lines and in the pieces of over-long lines."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self._masker = Masker(secrets, min_length=MIN_SECRET_LENGTH)
        pieces = self._masker.pieces
        # Same alternation, longest first, as the masker: the same matches in the same places.
        self._pattern = (
            re.compile("|".join(re.escape(piece) for piece in pieces)) if pieces else None
        )
        self._longest = max((len(piece) for piece in pieces), default=0)
        # For many lines joined by line feeds: the pieces that fit in one line (a whole
        # multi-line secret never does; its lines are pieces of their own).
        in_line = [piece for piece in pieces if "\n" not in piece]
        self._lines_pattern = (
            re.compile("|".join(re.escape(piece) for piece in in_line)) if in_line else None
        )

    def __call__(self, text: str) -> str:
        return self._masker(text)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask_lines(self, text: str) -> str:
        """Mask lines joined by line feeds in one pass, exactly as masking each line alone would.

        No piece of this pattern holds a line feed, so no match crosses one; within a line the
        same alternation, longest first, finds the same matches as the masker.
        """
        if self._lines_pattern is None:
            return text
        return self._lines_pattern.sub(MASK, text)

    def mask_prefix(self, text: str) -> tuple[str, str]:
        """Mask what of ``text`` is settled; return it with the raw rest to prepend next time.

        A secret starting before ``len(text) - (longest - 1)`` lies wholly inside ``text``, so
        every match there is decided; a later position might begin a secret that goes on in the
        next piece. The rest is at most ``longest - 1`` characters (or ends where a match
        crossing that point ends), so what is held back stays small.
        """
        if self._pattern is None:
            return text, ""
        settled = len(text) - (self._longest - 1)
        if settled <= 0:
            return "", text
        out: list[str] = []
        position = 0
        for match in self._pattern.finditer(text):
            if match.start() >= settled:
                break
            out.append(text[position : match.start()])
            out.append(MASK)
            position = match.end()
        cut = max(settled, position)
        out.append(text[position:cut])
        return "".join(out), text[cut:]
