"""Finding the system binaries that integration tests drive.

Locally a missing binary (nginx, haproxy, postgres, redis-server, dockerd)
skips the tests that need it. CI sets MICROSTACK_REQUIRE_BINARIES=1, and then
a missing binary fails the test instead: every test must run in CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_ENV = "MICROSTACK_REQUIRE_BINARIES"

# Debian installs some server binaries outside PATH.
_EXTRA_DIRS = ("/usr/sbin", "/usr/lib/postgresql/15/bin")


def binaries_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false")


def require_binary(name: str) -> str:
    """Return the absolute path of `name`, or skip (fail in CI) when absent."""
    found = shutil.which(name)
    if found is None:
        for directory in _EXTRA_DIRS:
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found = str(candidate)
                break
    if found is None:
        message = f"{name} is not installed (apt-get install it; .ci/run does)"
        if binaries_required():
            pytest.fail(f"{message}; {REQUIRE_ENV} is set, so this is a failure")
        pytest.skip(message)
    return found
