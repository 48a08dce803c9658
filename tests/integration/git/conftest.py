"""Settings for the git tests: rate-limit waits short enough for a test, a clone cache per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import Settings
from tests.support import canary


@pytest.fixture
def settings(test_settings: Settings, tmp_path: Path) -> Settings:
    return test_settings.model_copy(
        update={
            "git_rate_limit_backoff_seconds": 0.05,
            "git_rate_limit_max_wait_seconds": 1.5,
            "git_rate_limit_total_wait_seconds": 10.0,
            # Searched by the secret canary like the session's data directory.
            "git_clone_cache_dir": canary.watch(tmp_path / "git-cache"),
            "http_timeout": 5.0,
        }
    )
