#!/usr/bin/env bash
# Restore the stanza's newest backup into an EMPTY data directory, then let
# PostgreSQL replay archived WAL when it next starts:
#
#   restore.sh                 to the end of the archive (every archived commit)
#   restore.sh 'TIMESTAMPTZ'   to that moment, e.g. '2026-12-01 06:00:00.5+00'
#
# pgBackRest writes restore_command and the recovery target into
# postgresql.auto.conf and creates recovery.signal; the server started on this
# directory replays WAL from the repository and then promotes (to the end of
# the archive, or just after the last transaction committed at or before the
# target: `--target-action=promote`), and starts a new timeline that is archived
# as before.
#
# Run it as the database's OS user (the files it writes are that user's), with
# the repository and pgbackrest.conf mounted as for the backup sidecar.
# Environment: BACKUP_CONFIG, BACKUP_STANZA, BACKUP_PG_DATA (defaults below
# match components/backup/pgbackrest.py).
set -euo pipefail
umask 0077

config="${BACKUP_CONFIG:-/etc/pgbackrest/pgbackrest.conf}"
stanza="${BACKUP_STANZA:-microstack}"
pg_data="${BACKUP_PG_DATA:-/var/lib/postgresql/data}"

if (($# > 1)); then
    echo "usage: $0 [TARGET_TIME]" >&2
    exit 2
fi

# pgBackRest refuses a non-empty directory too, but this says why and what to do.
if [[ -e $pg_data && -n "$(ls -A "$pg_data")" ]]; then
    echo "refusing to restore into $pg_data: it is not empty." >&2
    echo "Restore into a fresh volume (or move the old data away) and run this again." >&2
    exit 1
fi

options=(--config="$config" --stanza="$stanza" --pg1-path="$pg_data")
if (($# == 1)); then
    options+=(--type=time --target="$1" --target-action=promote)
    echo "restoring stanza $stanza into $pg_data, to $1"
else
    options+=(--type=default)
    echo "restoring stanza $stanza into $pg_data, to the end of the archive"
fi

mkdir -p "$pg_data"
chmod 0700 "$pg_data"
pgbackrest "${options[@]}" restore
echo "restore done: start PostgreSQL on $pg_data; it replays WAL and promotes"
