"""How long the program takes to evaluate under Pulumi's mocks, per stack file.

This is the program's own share of `pulumi preview`: config validation, the
resource graph, the rendered proxy config. Prints min/median/max over runs.

    venv/bin/python bench/bench_program.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "services/common")]

from tests.support.program import run_stack_file  # noqa: E402

PROD_SECRETS = {"tlsCertificate": "bench-cert", "tlsPrivateKey": "bench-key"}


def main(runs: int) -> None:
    print(f"{'stack':<8} {'resources':>9} {'min ms':>8} {'median ms':>10} {'max ms':>8}")
    for stack in ("dev", "staging", "prod"):
        secrets = PROD_SECRETS if stack == "prod" else None
        run_stack_file(stack, secrets=secrets)  # warm-up: imports, template compilation
        timings = []
        count = 0
        for _ in range(runs):
            started = time.perf_counter()
            program = run_stack_file(stack, secrets=secrets)
            timings.append((time.perf_counter() - started) * 1000)
            count = len(program.resources)
        print(f"{stack:<8} {count:>9} {min(timings):>8.1f} {statistics.median(timings):>10.1f} {max(timings):>8.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
