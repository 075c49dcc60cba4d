#!/usr/bin/env bash
# The backup sidecar: creates the pgBackRest stanza, checks that WAL archiving
# works, then takes a full backup whenever the newest backup in the repository
# is older than BACKUP_FULL_EVERY_SECONDS (pgBackRest expires what retention
# allows at the end of each backup).
#
# The schedule is read from the repository (`pgbackrest info`), not kept in
# memory, so a restarted or replaced sidecar does not back up again at once.
#
# At start, after the stanza check, it asks PostgreSQL for a CHECKPOINT (see
# request_checkpoint): after a restore archive_timeout may otherwise not apply
# until the first timed checkpoint.
#
# Status: the first line of BACKUP_STATUS_FILE is `starting`, `ok` (the stanza
# check and the last backup succeeded) or `error`; the file is rewritten at
# least every BACKUP_POLL_SECONDS, also while a backup runs, so the health check
# (components/backup/pgbackrest.py HEALTH_COMMAND) tells a hung loop from a long
# backup.
#
# SIGTERM/SIGINT: a sleeping loop exits at once. A running pgBackRest command
# gets SIGTERM too and the loop waits for it (about a second): pgBackRest stops,
# its connection closes and PostgreSQL aborts the backup. The interrupted backup
# is not listed by `info` and is no base to restore from; the next start takes a
# full backup again (resuming a partial copy it finds, pgBackRest's `resume`
# default). The loop then exits 0.
#
# Every line on stdout is a JSON object with the fields the services log
# (timestamp, level, message, service, instance), so Logstash parses them;
# pgBackRest's own console lines are wrapped the same way.
set -euo pipefail
umask 0077

config="${BACKUP_CONFIG:?BACKUP_CONFIG must name pgbackrest.conf}"
stanza="${BACKUP_STANZA:?BACKUP_STANZA must name the stanza}"
socket_dir="${BACKUP_PG_SOCKET_DIR:?BACKUP_PG_SOCKET_DIR must name the PostgreSQL socket directory}"
pg_port="${BACKUP_PG_PORT:-5432}"
pg_user="${BACKUP_PG_USER:?BACKUP_PG_USER must name the database role pgBackRest connects as}"
full_every="${BACKUP_FULL_EVERY_SECONDS:?BACKUP_FULL_EVERY_SECONDS must be the seconds between full backups}"
poll="${BACKUP_POLL_SECONDS:-30}"
# After a failed step, wait this long before the next attempt.
retry="${BACKUP_RETRY_SECONDS:-$((poll * 10))}"
status_file="${BACKUP_STATUS_FILE:?BACKUP_STATUS_FILE must name the status file}"
service="${BACKUP_SERVICE:-backup}"
instance="${BACKUP_INSTANCE:-$HOSTNAME}"

stopping=0
child=0

# jq definitions for every log line: the timestamp as the services write it
# (UTC, milliseconds) and the shared fields.
# shellcheck disable=SC2016  # jq variables, not shell ones
jq_defs='
def stamp: now as $t
  | ($t | strftime("%Y-%m-%dT%H:%M:%S")) + "." + ("00" + (($t - ($t | floor)) * 1000 | floor | tostring))[-3:]
  + "+00:00";
def record($level; $message):
  {timestamp: stamp, level: $level, message: $message, service: $service, instance: $instance};
'

# log LEVEL MESSAGE [EXTRA_JSON_OBJECT]
log() {
    local extra=${3:-}
    [[ -n $extra ]] || extra='{}'
    jq -cn --arg service "$service" --arg instance "$instance" \
        --arg level "$1" --arg message "$2" --argjson extra "$extra" \
        "$jq_defs"' record($level; $message) + $extra'
}

# Turns pgBackRest's console lines ("P00   INFO: backup command end: completed
# successfully") on stdin into log records, one jq for the whole command;
# continuation lines (an error's detail) keep the level of the line before.
pgbackrest_lines() {
    jq -nRc --unbuffered --arg service "$service" --arg instance "$instance" --arg command "$1" "$jq_defs"'
        foreach inputs as $line ({level: "INFO"};
            ([$line | capture("^P[0-9]+ +(?<level>[A-Z]+): (?<message>.*)$")] | .[0]) as $m
            | if $m == null then .message = $line
              else .level = ({WARN: "WARNING", ERROR: "ERROR", ASSERT: "ERROR", DETAIL: "DEBUG",
                              DEBUG: "DEBUG", TRACE: "DEBUG"}[$m.level] // "INFO")
                | .message = $m.message
              end;
            record(.level; .message) + {source: "pgbackrest", command: $command})'
}

write_status() {
    local state=$1
    printf '%s\n' "$state" >"$status_file.tmp"
    mv -f "$status_file.tmp" "$status_file"
}

# Refresh the status file's time without changing its state.
heartbeat() {
    touch "$status_file"
}

# shellcheck disable=SC2329  # called by the trap below
on_signal() {
    stopping=1
    if ((child)); then
        kill -TERM "$child" 2>/dev/null || true
    fi
}
trap on_signal TERM INT

# Sleep up to $1 seconds; a signal ends it at once.
pause() {
    ((stopping)) && return 0
    sleep "$1" &
    wait $! || true
}

# run_pgbackrest COMMAND [OPTIONS...]: runs it in the background (so a signal
# reaches it) with its output through pgbackrest_lines (a FIFO rather than a
# pipe, so $! is pgBackRest itself), refreshing the status file while it runs.
# Returns its exit code once its last line is logged.
run_pgbackrest() {
    local command=$1 started=$SECONDS rc=0 lines
    shift
    pgbackrest_lines "$command" <"$fifo" &
    lines=$!
    pgbackrest --config="$config" --stanza="$stanza" "$@" "$command" >"$fifo" 2>&1 &
    child=$!
    local beat=$SECONDS
    while kill -0 "$child" 2>/dev/null; do
        if ((SECONDS - beat >= poll)); then
            heartbeat
            beat=$SECONDS
        fi
        # Not `pause`: after a signal this still waits for the child to finish.
        sleep 1 &
        wait $! || true
    done
    wait "$child" || rc=$?
    child=0
    wait "$lines" || true
    log "$([[ $rc == 0 ]] && echo INFO || echo ERROR)" "pgbackrest $command exited with $rc" \
        "$(jq -cn --arg command "$command" --argjson rc "$rc" --argjson seconds "$((SECONDS - started))" \
            '{command: $command, exit_code: $rc, duration_seconds: $seconds}')"
    return "$rc"
}

# The stop time (epoch seconds) of the newest backup in the repository, 0 if none.
newest_backup_epoch() {
    pgbackrest --config="$config" --stanza="$stanza" --log-level-console=error info --output=json |
        jq -r '[.[0].backup[]?.timestamp.stop] | max // 0'
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fifo=$work/pgbackrest.out
mkfifo "$fifo"
mkdir -p "$(dirname "$status_file")"
write_status starting
log INFO "backup loop starting" "$(jq -cn --arg stanza "$stanza" --argjson every "$full_every" \
    '{stanza: $stanza, full_every_seconds: $every}')"

until ((stopping)) || [[ -S "$socket_dir/.s.PGSQL.$pg_port" ]]; do
    log INFO "waiting for PostgreSQL's socket in $socket_dir"
    heartbeat
    pause "$poll"
done

# An immediate CHECKPOINT, so that archive_timeout applies from now on.
#
# After recovery (a restore, or a crash) PostgreSQL 15's checkpointer runs the
# end-of-recovery checkpoint while the server still counts as in recovery; back
# in its main loop it may compute its next sleep before the startup process
# marks recovery done, and then it sleeps for checkpoint_timeout (5 min) instead
# of archive_timeout: a quiet server's last segment is not switched and archived
# for up to that long (src/backend/postmaster/checkpointer.c, CheckpointerMain,
# REL_15_STABLE: `if (XLogArchiveTimeout > 0 && !RecoveryInProgress())`).
# A checkpoint request wakes it, and after it the loop sees a server out of
# recovery. It runs after stanza-create, which refuses a server in recovery.
request_checkpoint() {
    local output
    if output=$(psql -X -q -h "$socket_dir" -p "$pg_port" -U "$pg_user" -d postgres -c CHECKPOINT 2>&1); then
        log INFO "checkpoint requested: archive_timeout applies from now on"
    else
        log ERROR "CHECKPOINT failed" "$(jq -cn --arg output "$output" '{output: $output}')"
        return 1
    fi
}

until ((stopping)); do
    if run_pgbackrest stanza-create && run_pgbackrest check && request_checkpoint; then
        write_status ok
        break
    fi
    write_status error
    ((stopping)) || log ERROR "stanza-create or check failed; retrying in ${retry}s"
    pause "$retry"
done

while ((!stopping)); do
    if ! newest=$(newest_backup_epoch); then
        write_status error
        log ERROR "pgbackrest info failed; retrying in ${retry}s"
        pause "$retry"
        continue
    fi
    age=$(($(date +%s) - newest))
    if ((age >= full_every)); then
        log INFO "newest backup is ${age}s old; taking a full backup" \
            "$(jq -cn --argjson age "$age" '{newest_backup_age_seconds: $age}')"
        if run_pgbackrest backup --type=full; then
            write_status ok
        else
            write_status error
            ((stopping)) || log ERROR "backup failed; retrying in ${retry}s"
            pause "$retry"
            continue
        fi
    else
        heartbeat
    fi
    pause "$poll"
done

log INFO "backup loop stopped"
exit 0
