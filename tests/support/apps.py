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
# Settings the app never reads while it is built, only per request from its runtime, and that a
# fixture sets per test: the git tests' clone cache (tests/integration/git/conftest.py) made each
# of them build its own app (about 2 s of a 2.5 s setup).
_PER_REQUEST_ONLY = {"git_clone_cache_dir": None}


def _built_with(settings: Settings) -> Settings:
    """What of ``settings`` an app depends on: the settings, less the per-request-only fields."""
    return settings.model_copy(update=_PER_REQUEST_ONLY, deep=True)


def app_for(runtime: Runtime) -> FastAPI:
    """The app for ``runtime.settings``, serving ``runtime`` (one test's client at a time)."""
    from shipyard.api import create_app

    key = _built_with(runtime.settings)
    found = next((entry for entry in _BUILT if entry[0] == key), None)
    if found is None:
        # A copy: a test that changes its settings object afterwards gets a new app.
        found = (key, create_app(runtime=runtime))
        del _BUILT[_KEEP - 1 :]
    else:
        _BUILT.remove(found)
    _BUILT.insert(0, found)
    app = found[1]
    app.state.runtime = runtime
    return app
