"""Which environment variables a user may set for scripts on a host, and which are refused.

Scripts are reviewed through their repository; the environment a deployment (or, later, a
template or inventory) sets must not be a way around that review. Refused are the names that
make a shell, the dynamic loader or a language runtime run or load code the script does not
name:

- names whose value itself runs code (``BASH_ENV`` is expanded by bash, so
  ``BASH_ENV='$(cmd)'`` runs ``cmd``; ``PS4`` with ``SHELLOPTS=xtrace``; ``NODE_OPTIONS``,
  ``PERL5OPT``, ``JAVA_TOOL_OPTIONS``...);
- search paths for programs, libraries and modules (``PATH``, ``LD_*``, ``DYLD_*``,
  ``PYTHONPATH``, ``PERL5LIB``, ``NODE_PATH``, ``PSModulePath``...): a script that needs one
  sets it itself, where the review sees it;
- names that change how the shell parses the script (``IFS``, ``SHELLOPTS``, ``BASHOPTS``) or
  name a program other programs run (``BROWSER``, ``LESSOPEN``, ``COMSPEC``...);
- ``BASH_FUNC_*`` (exported bash functions), ``GIT_*`` except the author and committer
  identity (git reads commands and configuration from them), and ``SHIPYARD_*``, which
  Shipyard sets itself (``SHIPYARD_DEPLOYMENT_ID``, ``SHIPYARD_HOST``...).

Names are compared without regard to case: Windows treats ``Path`` as ``PATH``. A deny-list
cannot be complete; it closes the known ways, and the list is in README and docs/decisions.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Letters, digits and underscores, not starting with a digit: valid for sh and PowerShell.
VALID_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shipyard's own variables: refused from users, set by Shipyard for every script.
RESERVED_PREFIX = "SHIPYARD_"

_SHELL = "changes how the shell starts or reads the script"
_LOADER = "changes which libraries or programs are loaded"
_RUNTIME = "makes a language runtime load or run other code"
_COMMAND = "names a command that other programs run"
_WINDOWS = "changes how Windows or PowerShell finds and runs code"

REFUSED_NAMES: dict[str, str] = {
    # POSIX shells
    "BASH_ENV": _SHELL,
    "ENV": _SHELL,
    "ZDOTDIR": _SHELL,
    "PS4": _SHELL,
    "SHELLOPTS": _SHELL,
    "BASHOPTS": _SHELL,
    "IFS": _SHELL,
    "PROMPT_COMMAND": _SHELL,
    # Programs and the dynamic loader
    "PATH": _LOADER,
    "GCONV_PATH": _LOADER,
    "OPENSSL_CONF": _LOADER,
    "OPENSSL_ENGINES": _LOADER,
    "OPENSSL_MODULES": _LOADER,
    # Language runtimes
    "PYTHONPATH": _RUNTIME,
    "PYTHONHOME": _RUNTIME,
    "PYTHONSTARTUP": _RUNTIME,
    "PYTHONWARNINGS": _RUNTIME,
    "PERL5OPT": _RUNTIME,
    "PERL5LIB": _RUNTIME,
    "PERLLIB": _RUNTIME,
    "PERL5DB": _RUNTIME,
    "RUBYOPT": _RUNTIME,
    "RUBYLIB": _RUNTIME,
    "NODE_OPTIONS": _RUNTIME,
    "NODE_PATH": _RUNTIME,
    "JAVA_TOOL_OPTIONS": _RUNTIME,
    "_JAVA_OPTIONS": _RUNTIME,
    "JDK_JAVA_OPTIONS": _RUNTIME,
    # Commands other programs run
    "BROWSER": _COMMAND,
    "LESSOPEN": _COMMAND,
    "LESSCLOSE": _COMMAND,
    # Windows and PowerShell
    "PSMODULEPATH": _WINDOWS,
    "PSEXECUTIONPOLICYPREFERENCE": _WINDOWS,
    "__PSLOCKDOWNPOLICY": _WINDOWS,
    "COMSPEC": _WINDOWS,
    "PATHEXT": _WINDOWS,
    "SYSTEMROOT": _WINDOWS,
    "WINDIR": _WINDOWS,
}

REFUSED_PREFIXES: dict[str, str] = {
    "LD_": _LOADER,
    "DYLD_": _LOADER,
    "BASH_FUNC_": "defines a shell function",
    "GIT_": "makes git run commands or read other configuration",
    RESERVED_PREFIX: "is reserved for the variables Shipyard sets itself",
}

# git reads these as plain data (who made a commit), never as commands or configuration.
ALLOWED_NAMES = frozenset(
    {
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_COMMITTER_DATE",
    }
)


def refusal(name: str) -> str | None:
    """Why ``name`` may not be set by a user, or None when it may."""
    if not VALID_NAME.match(name):
        return "is not a valid name (letters, digits and _, not starting with a digit)"
    upper = name.upper()
    if upper in ALLOWED_NAMES:
        return None
    reason = REFUSED_NAMES.get(upper)
    if reason is not None:
        return reason
    for prefix, why in REFUSED_PREFIXES.items():
        if upper.startswith(prefix):
            return why
    return None


def refusal_message(name: str) -> str | None:
    """The sentence refusing ``name`` (it names the variable), or None when it is allowed."""
    reason = refusal(name)
    if reason is None:
        return None
    if not VALID_NAME.match(name):
        return f"environment variable {name!r} {reason}"
    return f"environment variable {name} is not allowed: it {reason}"


def first_refused(names: Iterable[str], *, ignore_prefix: str | None = None) -> str | None:
    """The message for the first refused name of ``names`` (skipping ``ignore_prefix``)."""
    for name in names:
        if ignore_prefix and name.upper().startswith(ignore_prefix):
            continue
        message = refusal_message(name)
        if message is not None:
            return message
    return None
