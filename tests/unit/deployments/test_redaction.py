"""Masking output that arrives cut: a secret across the executor's line cut is masked whole."""

from __future__ import annotations

import itertools
import random

import pytest

from shipyard.deployments.redaction import MASK, Redactor


def mask_in_pieces(redactor: Redactor, pieces: list[str]) -> str:
    """Feed ``pieces`` of one line as the log writer does; return what would be stored."""
    out: list[str] = []
    carry = ""
    for piece in pieces[:-1]:
        settled, carry = redactor.mask_prefix(carry + piece)
        out.append(settled)
    out.append(redactor(carry + pieces[-1]))
    return "".join(out)


def cut(text: str, positions: list[int]) -> list[str]:
    bounds = [0, *sorted(positions), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_a_secret_straddling_a_cut_is_masked_whole() -> None:
    secret = "hunter2-the-long-password"
    redactor = Redactor([secret])
    line = "x" * 100 + secret + "y" * 50
    for position in range(95, 130):
        stored = mask_in_pieces(redactor, cut(line, [position]))
        assert stored == "x" * 100 + MASK + "y" * 50, position
        assert "hunter" not in stored and "password" not in stored


def test_held_back_text_stays_below_the_longest_secret() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    settled, rest = redactor.mask_prefix("0123456789" * 3 + "abcd")
    assert len(rest) <= 7
    assert settled + rest == "0123456789" * 3 + "abcd"  # the tail may still grow into abcdefgh
    settled, rest = redactor.mask_prefix("abc")
    assert (settled, rest) == ("", "abc")
    assert Redactor([]).mask_prefix("anything") == ("anything", "")


@pytest.mark.parametrize("seed", range(40))
def test_pieces_mask_exactly_like_the_whole_line(seed: int) -> None:
    generator = random.Random(seed)
    secrets = ["s3cr3t", "s3cr3t-longer-one", "tok_" + "z" * 20, "-----BEGIN KEY-----\nabcd1234\n"]
    redactor = Redactor(secrets)
    alphabet = ["a", "s", "3", "c", "r", "t", "-", "z", "_", *secrets]
    line = "".join(generator.choice(alphabet) for _ in range(300)).replace("\n", " ")
    positions = generator.sample(range(1, len(line)), generator.randint(1, 12))
    assert mask_in_pieces(redactor, cut(line, positions)) == redactor(line)
