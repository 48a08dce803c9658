"""The command line's side of the REST API: the HTTP client, profiles, output and exit codes.

Commands (``shipyard.<domain>.cli``) build on this package and never on the server's modules:
- ``http``: ``ApiClient`` (one line per error, SSE with resume);
- ``profiles``: where the address and token come from (flags, environment, config file);
- ``output``: ``-o table|json|yaml`` and the printing every command does through it;
- ``names``: a name or an id wherever an id is taken;
- ``exits``: the exit codes;
- ``commands``: the Typer app and command classes that give every command the global options.
"""

from shipyard.client.http import ApiClient, ApiError, error_from

__all__ = ["ApiClient", "ApiError", "error_from"]
