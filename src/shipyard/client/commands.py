"""The Typer pieces every API command shares: the global options, one-line errors, the client.

``ApiTyper`` is ``typer.Typer`` whose commands all take ``-o/--output``, ``-v/--verbose``,
``--profile``, ``--url`` and ``--token`` (also accepted before the sub-command, on ``shipyard``
itself). Its ``command()`` adds them to each function's signature, so they show in ``--help``,
and takes them off again before the function runs: the function reads them from ``options``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from typer.models import OptionInfo

from shipyard.client import exits, names, profiles
from shipyard.client.http import ApiClient, ApiError
from shipyard.client.output import OutputFormat, err_console, options

# The loggers `-v` opens: the HTTP requests a command makes (-v), and their details (-vv).
CHATTY_LOGGERS = ("httpx", "httpcore", "httpx_sse", "shipyard.client")

OutputOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "-o",
        "--output",
        help="Output format (default: table on a terminal, json otherwise; or SHIPYARD_OUTPUT).",
        show_default=False,
    ),
]
VerboseOption = Annotated[
    int,
    typer.Option(
        "-v", "--verbose", count=True, help="Show the HTTP requests (-vv: and their details)."
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", help="The `shipyard login` profile to use [SHIPYARD_PROFILE]."),
]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="Shipyard's address [SHIPYARD_URL, else the profile's].")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help=(
            "API token [SHIPYARD_TOKEN, else the profile's]. Others on the machine can see a "
            "command line: prefer the environment or `shipyard login`."
        ),
    ),
]
# Parameter name -> (annotation, the options key): the names cannot clash with a command's own.
GLOBAL_PARAMETERS: dict[str, tuple[Any, str]] = {
    "global_output": (OutputOption, "output"),
    "global_verbose": (VerboseOption, "verbose"),
    "global_profile": (ProfileOption, "profile"),
    "global_url": (UrlOption, "url"),
    "global_token": (TokenOption, "token"),
}


class _VerboseHandler(logging.StreamHandler[Any]):
    """The handler ``-v`` adds (marked by its class, so a second ``-v`` adds no second one)."""


def open_loggers(verbosity: int) -> None:
    """``-v``: the HTTP requests on stderr; ``-vv``: their details too."""
    if verbosity <= 0:
        return
    level = logging.DEBUG if verbosity > 1 else logging.INFO
    for logger_name in CHATTY_LOGGERS:
        logger = logging.getLogger(logger_name)
        logger.setLevel(level)
        if not any(isinstance(h, _VerboseHandler) for h in logger.handlers):
            handler = _VerboseHandler()  # stderr, whatever else the process logs to
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            logger.addHandler(handler)


def set_root_options(**values: Any) -> None:
    """What ``shipyard`` itself was given (before the sub-command): the commands' defaults."""
    options.root = {key: value for key, value in values.items() if value}
    open_loggers(int(values.get("verbose") or 0))


# The global options of the commands that work on this machine rather than through the API
# (database, users, keys, backups): --url, --token and --profile would mean nothing there.
LOCAL_PARAMETERS = ("global_output", "global_verbose")


def with_global_options(
    func: Callable[..., Any], only: tuple[str, ...] | None = None
) -> Callable[..., Any]:
    """``func`` with the global options (or ``only`` those) added to its signature and taken off
    before it runs."""
    taken = {name: spec for name, spec in GLOBAL_PARAMETERS.items() if only is None or name in only}
    signature = inspect.signature(func, eval_str=True)
    _refuse_clashes(func, signature, taken)
    extra = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=annotation,
            default=0 if key == "verbose" else None,
        )
        for name, (annotation, key) in taken.items()
    ]
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {key: kwargs.pop(name, None) for name, (_, key) in taken.items()}
        options.command = {key: value for key, value in given.items() if value}
        open_loggers(int(given.get("verbose") or 0))
        try:
            return func(*args, **kwargs)
        finally:
            options.command = {}

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*positional, *keyword, *extra]
    )
    wrapper.__annotations__ = {
        **{p.name: p.annotation for p in parameters},
        **{p.name: p.annotation for p in extra},
    }
    return wrapper


def _flags(parameter: inspect.Parameter) -> set[str]:
    """The option flags Typer gives ``parameter`` (``--name`` unless it declares its own)."""
    infos = [
        m for m in getattr(parameter.annotation, "__metadata__", ()) if isinstance(m, OptionInfo)
    ]
    if isinstance(parameter.default, OptionInfo):
        infos.append(parameter.default)
    if not infos:
        return set()
    info = infos[0]
    declared = list(info.param_decls or ())
    if isinstance(info.default, str) and info.default.startswith("-"):
        declared.insert(0, info.default)  # Annotated[..., typer.Option("--x")]
    if not declared:
        declared = [f"--{parameter.name.replace('_', '-')}"]
    return {flag for declaration in declared for flag in declaration.split("/") if flag}


def _global_flags(taken: dict[str, tuple[Any, str]]) -> set[str]:
    return {
        flag
        for name, (annotation, _) in taken.items()
        for flag in _flags(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        )
    }


def _refuse_clashes(
    func: Callable[..., Any], signature: inspect.Signature, taken: dict[str, tuple[Any, str]]
) -> None:
    """A command's own option must not reuse a global flag: the global one would win silently."""
    reserved = _global_flags(taken)
    for parameter in signature.parameters.values():
        clash = _flags(parameter) & reserved
        if clash:
            raise TypeError(
                f"{func.__module__}.{func.__qualname__}: option {sorted(clash)} is a global option"
            )


class ApiTyper(typer.Typer):
    """``typer.Typer`` whose commands take the global options."""

    global_options: tuple[str, ...] | None = None  # None: all of them

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        register = super().command(*args, **kwargs)

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            register(with_global_options(func, self.global_options))
            return func

        return decorator


class LocalTyper(ApiTyper):
    """``ApiTyper`` for commands that work on this machine, not through the API: -o and -v."""

    global_options = LOCAL_PARAMETERS


def chosen(name: str) -> Any:
    """A global option's value for this invocation (None when not given)."""
    return options.get(name)


def fail(message: str, exit_code: int = exits.ERROR) -> NoReturn:
    """One ``error:`` line on stderr, then exit with ``exit_code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


def exit_code_for(error: ApiError) -> int:
    return exits.USAGE if isinstance(error, names.AmbiguousName) else exits.ERROR


def connection() -> profiles.Connection:
    try:
        return profiles.resolve(url=chosen("url"), token=chosen("token"), profile=chosen("profile"))
    except profiles.ProfileError as exc:
        fail(str(exc), exits.USAGE)


def new_client() -> ApiClient:
    """A client for this invocation's connection; no token is a one-line error."""
    target = connection()
    if not target.token:
        fail(
            f"no API token for {target.url}: run `shipyard login {target.url}`, or set "
            "SHIPYARD_TOKEN (create one with POST /api/v1/auth/tokens)"
        )
    return ApiClient(target.url, target.token)


@contextmanager
def api_client() -> Iterator[ApiClient]:
    """The REST client; an ``ApiError`` inside the block ends the command with one line."""
    try:
        with new_client() as api:
            yield api
    except ApiError as exc:
        fail(str(exc), exit_code_for(exc))


def resolve(api: ApiClient, kind: names.Kind, value: str) -> str:
    """``names.resolve`` for a command: not found is an error, ambiguous a usage error."""
    try:
        return names.resolve(api, kind, value)
    except ApiError as exc:
        fail(str(exc), exit_code_for(exc))


def name_option(kind: names.Kind, help: str, *flags: str, metavar: str | None = "NAME|ID") -> Any:
    """An option that takes ``kind`` by name or id, with completion of the names."""
    return typer.Option(*flags, metavar=metavar, help=help, autocompletion=complete(kind))


def name_argument(kind: names.Kind, help: str) -> Any:
    """An argument that takes ``kind`` by name or id, with completion of the names."""
    return typer.Argument(help=help, autocompletion=complete(kind))


def complete(kind: names.Kind) -> Callable[[str], list[str]]:
    """Shell completion of ``kind``'s names (nothing, quietly, when the API cannot answer)."""

    def complete_names(incomplete: str) -> list[str]:
        try:
            target = profiles.resolve()
            if not target.token:
                return []
            with ApiClient(target.url, target.token, timeout=5.0) as api:
                found = names.names(api, kind)
        except (ApiError, profiles.ProfileError):
            return []
        return sorted(name for name in set(found) if name.startswith(incomplete))

    return complete_names
