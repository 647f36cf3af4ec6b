"""Shared helpers for the test suite."""

from __future__ import annotations

# The plugin loads numpy only when a perf test runs. pytester's in-process runs restore
# sys.modules after each run, so a numpy first imported inside one would be dropped and then
# imported again by the next, which numpy refuses ("cannot load module more than once per
# process"). Imported here, in the outer process, it stays loaded for every inner run.
import numpy  # noqa: F401
