"""Finding the system binaries that integration tests drive.

Locally a missing binary (nginx, haproxy, postgres, redis-server, dockerd)
skips the tests that need it. CI sets MICROSTACK_REQUIRE_BINARIES=1, and then
a missing binary fails the test instead: every test must run in CI.
"""

from __future__ import annotations

import os
import shutil
import sysconfig

import pytest

REQUIRE_ENV = "MICROSTACK_REQUIRE_BINARIES"

# Debian installs some server binaries outside PATH.
_EXTRA_DIRS = ("/usr/sbin", "/usr/lib/postgresql/15/bin")


def binaries_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false")


def find_binary(name: str) -> str | None:
    """The absolute path of `name`, or None.

    Looks first in the running interpreter's scripts directory: pip installs the
    binaries of requirements-dev.txt (actionlint, shellcheck) there, which is the
    venv's bin/, and `make test` does not put it on PATH. sysconfig names that
    directory for any interpreter (a venv, or a system Python, whose scripts go
    to /usr/local/bin rather than next to sys.executable).
    """
    search = [sysconfig.get_path("scripts"), *os.environ.get("PATH", os.defpath).split(os.pathsep), *_EXTRA_DIRS]
    # An empty PATH entry would mean the working directory.
    return shutil.which(name, path=os.pathsep.join(d for d in search if d))


def require_binary(name: str) -> str:
    """Return the absolute path of `name`, or skip (fail in CI) when absent."""
    found = find_binary(name)
    if found is None:
        message = f"{name} is not installed (apt-get install it; .ci/run does)"
        if binaries_required():
            pytest.fail(f"{message}; {REQUIRE_ENV} is set, so this is a failure")
        pytest.skip(message)
    return found
