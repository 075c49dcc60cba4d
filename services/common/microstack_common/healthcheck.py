"""`python -m microstack_common.healthcheck DEFAULT_PORT`: the container health command.

Slim and minimal Debian images have no curl or wget, but always have the
service's own Python. Exits 0 when `GET /health` on the local port answers
200 (ok or degraded), 1 otherwise, within `TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from microstack_common.contract import HEALTH_PATH, Env

TIMEOUT_SECONDS = 3.0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m microstack_common.healthcheck DEFAULT_PORT", file=sys.stderr)
        return 2
    port = os.environ.get(Env.PORT) or argv[1]
    url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
