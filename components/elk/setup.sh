#!/bin/bash
# One-shot setup of the logging stack's Elasticsearch, run by the setup job
# once Elasticsearch is healthy:
#   1. sets the password of the built-in kibana_system user, which Kibana logs in as;
#   2. installs the index lifecycle policy that deletes old daily indices;
#   3. installs the index template that maps the log fields and attaches the policy;
#   4. attaches the policy to daily indices that already exist (a retention change,
#      or an index Logstash created before this job ran).
# Every step sets a state with PUT or POST, so running the job again (a replaced
# container, a changed retention) is harmless.
#
# Everything comes from SETUP_* environment variables (render.py:setup_environment);
# the passwords come from files.
set -euo pipefail

: "${SETUP_ES_URL:?SETUP_ES_URL is required}"
: "${SETUP_ELASTIC_PASSWORD_FILE:?SETUP_ELASTIC_PASSWORD_FILE is required}"
: "${SETUP_KIBANA_SYSTEM_PASSWORD_FILE:?SETUP_KIBANA_SYSTEM_PASSWORD_FILE is required}"
: "${SETUP_ILM_POLICY_NAME:?SETUP_ILM_POLICY_NAME is required}"
: "${SETUP_ILM_POLICY_FILE:?SETUP_ILM_POLICY_FILE is required}"
: "${SETUP_INDEX_TEMPLATE_NAME:?SETUP_INDEX_TEMPLATE_NAME is required}"
: "${SETUP_INDEX_TEMPLATE_FILE:?SETUP_INDEX_TEMPLATE_FILE is required}"
: "${SETUP_INDEX_PATTERN:?SETUP_INDEX_PATTERN is required}"
: "${SETUP_WAIT_SECONDS:=180}"

log() {
  printf '%s elk-setup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# Quote a value for a double-quoted string in curl's config syntax.
quote() {
  local value=$1
  value=${value//\\/\\\\}
  value=${value//\"/\\\"}
  printf '%s' "$value"
}

elastic_password=$(<"$SETUP_ELASTIC_PASSWORD_FILE")
kibana_system_password=$(<"$SETUP_KIBANA_SYSTEM_PASSWORD_FILE")

# request METHOD PATH [BODY]
# BODY is JSON text, or @FILE for a file's content. The credentials and the
# body travel in curl's config on stdin, so no password ever shows in a
# process's argument list. Prints the response; fails unless the status is 2xx.
request() {
  local method=$1 path=$2 body=${3-}
  local response status
  response=$(mktemp)
  if ! status=$(
    {
      printf 'user = "%s"\n' "$(quote "elastic:$elastic_password")"
      if [[ -n $body ]]; then
        printf 'data-binary = "%s"\n' "$(quote "$body")"
      fi
    } | curl --config - --silent --show-error --globoff --max-time 30 \
      --request "$method" --header 'Content-Type: application/json' \
      --output "$response" --write-out '%{http_code}' \
      "$SETUP_ES_URL$path"
  ); then
    log "$method $path failed: no answer from $SETUP_ES_URL"
    rm -f "$response"
    return 1
  fi
  if [[ $status != 2?? ]]; then
    log "$method $path answered HTTP $status: $(cat "$response")"
    rm -f "$response"
    return 1
  fi
  cat "$response"
  rm -f "$response"
}

log "waiting up to ${SETUP_WAIT_SECONDS}s for Elasticsearch at $SETUP_ES_URL"
deadline=$((SECONDS + SETUP_WAIT_SECONDS))
until last_error=$(request GET '/_cluster/health?wait_for_status=yellow&timeout=5s' 2>&1 >/dev/null); do
  if ((SECONDS >= deadline)); then
    log "Elasticsearch was not ready within ${SETUP_WAIT_SECONDS}s; last error: $last_error"
    exit 1
  fi
  sleep 1
done

# JSON-escaping a password needs the same two escapes as curl's config.
request POST /_security/user/kibana_system/_password \
  "{\"password\":\"$(quote "$kibana_system_password")\"}" >/dev/null
log "password of kibana_system set"

request PUT "/_ilm/policy/$SETUP_ILM_POLICY_NAME" "@$SETUP_ILM_POLICY_FILE" >/dev/null
log "lifecycle policy $SETUP_ILM_POLICY_NAME installed"

request PUT "/_index_template/$SETUP_INDEX_TEMPLATE_NAME" "@$SETUP_INDEX_TEMPLATE_FILE" >/dev/null
log "index template $SETUP_INDEX_TEMPLATE_NAME installed"

request PUT "/$SETUP_INDEX_PATTERN/_settings?allow_no_indices=true" \
  "{\"index.lifecycle.name\":\"$SETUP_ILM_POLICY_NAME\"}" >/dev/null
log "lifecycle policy attached to existing $SETUP_INDEX_PATTERN indices"

log "done"
