"""The application the ``client`` fixture talks to: built once per settings, bound to each test's
runtime.

Building the app is FastAPI analysing every route's signature and dependencies (~300 routes):
0.5-0.9 s of CPU per build, 1-1.5 s under coverage, paid by nearly every test of the suite. The
app holds nothing of a test's own: the runtime (database, keyring, HTTP client, clock...) is
``app.state.runtime``, read by every route and middleware per request, and the rest of the app
depends only on the settings it was built with. So one app per distinct settings object is
reused within a worker process, with the test's runtime put in its state.
"""

from __future__ import annotations

from fastapi import FastAPI

from shipyard.config import Settings
from shipyard.runtime import Runtime

# (settings the app was built with, app), newest first; a few at most (tests with their own
# settings build their own app, as before).
_BUILT: list[tuple[Settings, FastAPI]] = []
_KEEP = 4


def app_for(runtime: Runtime) -> FastAPI:
    """The app for ``runtime.settings``, serving ``runtime`` (one test's client at a time)."""
    from shipyard.api import create_app

    found = next((entry for entry in _BUILT if entry[0] == runtime.settings), None)
    if found is None:
        # A copy: a test that changes its settings object afterwards gets a new app.
        found = (runtime.settings.model_copy(deep=True), create_app(runtime=runtime))
        del _BUILT[_KEEP - 1 :]
    else:
        _BUILT.remove(found)
    _BUILT.insert(0, found)
    app = found[1]
    app.state.runtime = runtime
    return app
