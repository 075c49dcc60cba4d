#!/bin/bash
# One-shot setup of the logging stack, run by two jobs (components/elk/component.py).
#
# SETUP_TARGET=elasticsearch, once Elasticsearch is healthy:
#   1. sets the password of the built-in kibana_system user, which Kibana logs in as;
#   2. installs the index lifecycle policy that deletes old daily indices;
#   3. installs the index template that maps the log fields and attaches the policy;
#   4. attaches the policy to daily indices that already exist (a retention change,
#      or an index Logstash created before this job ran).
#
# SETUP_TARGET=kibana, once Kibana is healthy (it can log in only after step 1):
#   5. creates the data view of the daily indices under a fixed id, replacing the
#      one an earlier run created;
#   6. creates the saved search of the breaker and health events, overwriting the
#      one an earlier run created.
#
# Every step sets a state with PUT or POST (and the Kibana steps replace by id),
# so running a job again (a replaced container, a changed retention) is harmless.
#
# Everything comes from SETUP_* environment variables (render.py:setup_environment,
# render.py:kibana_setup_environment); the passwords come from files.
set -euo pipefail

log() {
  printf '%s %s-setup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SETUP_TARGET:-elk}" "$*" >&2
}

: "${SETUP_TARGET:?SETUP_TARGET is required}"
: "${SETUP_ELASTIC_PASSWORD_FILE:?SETUP_ELASTIC_PASSWORD_FILE is required}"
: "${SETUP_WAIT_SECONDS:=180}"

# Kibana refuses a request that changes something unless it carries this
# header, whatever its value (Kibana 8.15 REST API, "Request headers":
# https://www.elastic.co/guide/en/kibana/8.15/api.html).
headers=(--header 'Content-Type: application/json')
case $SETUP_TARGET in
  elasticsearch)
    : "${SETUP_ES_URL:?SETUP_ES_URL is required}"
    : "${SETUP_KIBANA_SYSTEM_PASSWORD_FILE:?SETUP_KIBANA_SYSTEM_PASSWORD_FILE is required}"
    : "${SETUP_ILM_POLICY_NAME:?SETUP_ILM_POLICY_NAME is required}"
    : "${SETUP_ILM_POLICY_FILE:?SETUP_ILM_POLICY_FILE is required}"
    : "${SETUP_INDEX_TEMPLATE_NAME:?SETUP_INDEX_TEMPLATE_NAME is required}"
    : "${SETUP_INDEX_TEMPLATE_FILE:?SETUP_INDEX_TEMPLATE_FILE is required}"
    : "${SETUP_INDEX_PATTERN:?SETUP_INDEX_PATTERN is required}"
    base_url=$SETUP_ES_URL
    what=Elasticsearch
    ;;
  kibana)
    : "${SETUP_KIBANA_URL:?SETUP_KIBANA_URL is required}"
    : "${SETUP_DATA_VIEW_FILE:?SETUP_DATA_VIEW_FILE is required}"
    : "${SETUP_SAVED_SEARCH_ID:?SETUP_SAVED_SEARCH_ID is required}"
    : "${SETUP_SAVED_SEARCH_FILE:?SETUP_SAVED_SEARCH_FILE is required}"
    base_url=$SETUP_KIBANA_URL
    what=Kibana
    headers+=(--header 'kbn-xsrf: microstack-setup')
    ;;
  *)
    log "SETUP_TARGET must be elasticsearch or kibana, not '$SETUP_TARGET'"
    exit 2
    ;;
esac

# Quote a value for a double-quoted string in curl's config syntax.
quote() {
  local value=$1
  value=${value//\\/\\\\}
  value=${value//\"/\\\"}
  printf '%s' "$value"
}

elastic_password=$(<"$SETUP_ELASTIC_PASSWORD_FILE")

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
      --request "$method" "${headers[@]}" \
      --output "$response" --write-out '%{http_code}' \
      "$base_url$path"
  ); then
    log "$method $path failed: no answer from $base_url"
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

# wait_until_ready PATH: poll PATH until it answers 2xx, for at most SETUP_WAIT_SECONDS.
wait_until_ready() {
  local path=$1 last_error deadline
  log "waiting up to ${SETUP_WAIT_SECONDS}s for $what at $base_url"
  deadline=$((SECONDS + SETUP_WAIT_SECONDS))
  until last_error=$(request GET "$path" 2>&1 >/dev/null); do
    if ((SECONDS >= deadline)); then
      log "$what was not ready within ${SETUP_WAIT_SECONDS}s; last error: $last_error"
      exit 1
    fi
    sleep 1
  done
}

setup_elasticsearch() {
  local kibana_system_password
  kibana_system_password=$(<"$SETUP_KIBANA_SYSTEM_PASSWORD_FILE")
  wait_until_ready '/_cluster/health?wait_for_status=yellow&timeout=5s'

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
}

setup_kibana() {
  # Kibana answers 503 until its core services (Elasticsearch, saved objects)
  # are available, 200 after (core-status-server-internal, routes/status.ts).
  wait_until_ready /api/status

  # The body carries `override: true` and a fixed id: Kibana deletes the data
  # view of the same name an earlier run created, then creates this one
  # (data_views.ts, createSavedObject; Kibana 8.15 "Create data view API":
  # https://www.elastic.co/guide/en/kibana/8.15/data-views-api-create.html).
  request POST /api/data_views/data_view "@$SETUP_DATA_VIEW_FILE" >/dev/null
  log "data view created"

  # `overwrite=true` replaces the object with this id instead of answering 409
  # (Kibana 8.15 "Create saved objects API":
  # https://www.elastic.co/guide/en/kibana/8.15/saved-objects-api-create.html).
  # The API is deprecated since 8.7 but served throughout 8.x; the saved
  # objects import API (`_import?overwrite=true`) takes the same object
  # should a later pinned Kibana drop it.
  request POST "/api/saved_objects/search/$SETUP_SAVED_SEARCH_ID?overwrite=true" \
    "@$SETUP_SAVED_SEARCH_FILE" >/dev/null
  log "saved search $SETUP_SAVED_SEARCH_ID created"
}

"setup_$SETUP_TARGET"
log "done"
