"""Background jobs of this domain, registered on the job app by ``shipyard.jobs``."""

from __future__ import annotations

import procrastinate

blueprint = procrastinate.Blueprint()
