"""Backup and restore benchmark: a full backup under write load, then two restores, for a database of a stated size.

The same scenario as the point-in-time recovery test
(tests/integration/backups/test_pitr.py, `pitr_run`), on a larger database:
rows are committed one by one while pgBackRest takes a full backup; the
cluster is then killed and its data directory deleted; restore.sh brings it
back into fresh clusters, to the end of the archive and to a moment between
two commits. Each run prints the database and repository size, the backup's
duration and the commits acknowledged meanwhile, and the seconds from each
restore command to a promoted server; it fails if anything acknowledged did
not come back.

Run from the repository root, as root (PostgreSQL runs as its own user):
`venv/bin/python -m bench.bench_backup` (1.5 million bulk rows, about 150 MiB;
`--rows 10000000` for about 1 GiB; `--runs 3` repeats). Needs PostgreSQL 15
and pgBackRest installed.
"""

from __future__ import annotations

import argparse

from tests.integration.backups.harness import BackupRig, pitr_run


def one_run(rows: int) -> str:
    rig = BackupRig()
    try:
        rig.start()
        rig.pgbackrest_run("stanza-create")
        rig.pgbackrest_run("check")
        run = pitr_run(rig, rows)
        if run.writer.errors or run.latest_ids != run.writer.acked or run.latest_bulk_digest != run.bulk_digest:
            raise SystemExit(f"restore to the end of the archive lost data: {run.summary()}")
        if run.at_mark_ids != list(range(1, run.mark.last_id + 1)):
            raise SystemExit(f"restore to {run.mark.server_time} is not exactly the rows before it: {run.summary()}")
        return run.summary()
    finally:
        rig.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000, help="bulk rows (about 100 bytes each on disk)")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for index in range(args.runs):
        print(f"run {index + 1} of {args.runs}")
        print(one_run(args.rows), flush=True)


if __name__ == "__main__":
    main()
