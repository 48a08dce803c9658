"""The deny-list of environment names that make shells, the loader or runtimes run code."""

from __future__ import annotations

import pytest

from shipyard.hosts import environment

REFUSED = [
    "BASH_ENV",
    "ENV",
    "ZDOTDIR",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "PROMPT_COMMAND",
    "PATH",
    "Path",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "ld_anything",
    "DYLD_INSERT_LIBRARIES",
    "GCONV_PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONWARNINGS",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "NODE_OPTIONS",
    "JAVA_TOOL_OPTIONS",
    "BASH_FUNC_ls",
    "GIT_SSH_COMMAND",
    "GIT_CONFIG_COUNT",
    "SHIPYARD_HOST",
    "shipyard_token",
    "PSModulePath",
    "COMSPEC",
    "PATHEXT",
    "BROWSER",
]
ALLOWED = ["APP_ENV", "DATABASE_URL", "PATHS_TO_KEEP", "MY_PATH", "LD", "GIT_AUTHOR_NAME", "HOME"]


@pytest.mark.parametrize("name", REFUSED)
def test_refused_names_are_named_in_the_message(name: str) -> None:
    message = environment.refusal_message(name)
    assert message is not None and name in message and "not allowed" in message


@pytest.mark.parametrize("name", ALLOWED)
def test_ordinary_names_pass(name: str) -> None:
    assert environment.refusal(name) is None


def test_first_refused_skips_shipyards_own_names() -> None:
    env = {"SHIPYARD_HOST": "web-1", "APP": "x"}
    assert environment.first_refused(env, ignore_prefix=environment.RESERVED_PREFIX) is None
    message = environment.first_refused({**env, "BASH_ENV": "$(id)"}, ignore_prefix="SHIPYARD_")
    assert message is not None and "BASH_ENV" in message
