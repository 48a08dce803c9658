"""What a ref and a repository path may look like before they reach git or a provider.

A ref is a branch, a tag or a commit id, never a refspec: the rules are git's own
``check-ref-format`` (with one-level names allowed) plus no leading ``-``, so no value can be
read by git as an option (``--upload-pack=...``) or as a refspec (``+refs/*:refs/*``).
"""

from __future__ import annotations

import re

from shipyard.errors import ValidationFailed

MAX_REF_LENGTH = 255
# Control characters (NUL included), space, and the characters git gives a meaning in revisions
# and refspecs: ~ ^ : ? * [ \.
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def ref_problem(value: str) -> str | None:
    """Why ``value`` is not a usable ref name, or None when it is."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_REF_LENGTH:
        return f"must be at most {MAX_REF_LENGTH} characters"
    match = _FORBIDDEN_CHARACTERS.search(value)
    if match:
        shown = repr(match.group())
        return f"must not contain {shown} (control characters, spaces, ~ ^ : ? * [ \\ are refused)"
    if value.startswith("-"):
        return "must not start with '-'"
    if value == "@":
        return "must not be '@'"
    if "@{" in value:
        return "must not contain '@{'"
    if ".." in value:
        return "must not contain '..'"
    if value.startswith("/") or value.endswith("/") or "//" in value:
        return "must not start or end with '/' or contain '//'"
    if value.endswith("."):
        return "must not end with '.'"
    for part in value.split("/"):
        if part.startswith("."):
            return "no part of it may start with '.'"
        if part.endswith(".lock"):
            return "no part of it may end with '.lock'"
    return None


def check_ref(value: str, *, field: str = "ref") -> str:
    """``value`` when it is a usable ref name; a 422 naming ``field`` otherwise."""
    problem = ref_problem(value)
    if problem is not None:
        raise ValidationFailed(f"{field} {problem}: give a branch, tag or commit", field=field)
    return value


def validate_ref(value: str | None) -> str | None:
    """Pydantic validator form of :func:`check_ref` (the field is named by Pydantic)."""
    if value is None:
        return None
    problem = ref_problem(value)
    if problem is not None:
        raise ValueError(f"{problem}: give a branch, tag or commit")
    return value


def check_path(value: str, *, field: str = "path") -> str:
    """``value`` when it can name a file in a repository (git paths hold anything but NUL)."""
    if "\x00" in value:
        raise ValidationFailed(f"{field} must not contain NUL bytes", field=field)
    return value


def validate_path(value: str) -> str:
    """Pydantic validator form of :func:`check_path`."""
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value
