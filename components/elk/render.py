"""Pure render functions for the logging stack: settings, pipeline, policy, setup job.

No Pulumi here: each function turns typed values into the text of one file,
so the tests read exactly what the containers get. The files that carry a
password (the Logstash pipeline, kibana.yml) are rendered inside an
`Output.apply` by the component and uploaded as secret files.

The YAML files are written as `key: <JSON value>` lines: JSON scalars are
valid YAML, so quoting is decided in one place (json.dumps) and the program
needs no YAML library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from microstack_common import contract

ELASTIC_USER = "elastic"
KIBANA_SYSTEM_USER = "kibana_system"

INDEX_PREFIX = "microstack-logs"
INDEX_PATTERN = f"{INDEX_PREFIX}-*"
ILM_POLICY_NAME = INDEX_PREFIX
INDEX_TEMPLATE_NAME = INDEX_PREFIX
# Tag Logstash puts on a line that is not JSON (PostgreSQL, Redis, a crash trace).
PARSE_FAILURE_TAG = "_jsonparsefailure"

# The Elasticsearch image's own start script; `eswrapper` asks it to start the node.
ES_ENTRYPOINT = "/usr/local/bin/docker-entrypoint.sh"

# Logstash's monitoring API, inside its container only (the health check).
LOGSTASH_API_PORT = 9600

ELASTICSEARCH_URL = f"http://{contract.Alias.ELASTICSEARCH}:{contract.ELASTICSEARCH_PORT}"

# The fields every microstack log line has (services/common logs.py, the
# proxy's access log), mapped explicitly so that a search by request id is an
# exact match and `level` is one type although GELF sets it as a number on
# lines that are not JSON.
LOG_FIELD_MAPPINGS: dict[str, dict[str, Any]] = {
    "request_id": {"type": "keyword"},
    "service": {"type": "keyword"},
    "instance": {"type": "keyword"},
    "level": {"type": "keyword"},
    "message": {"type": "text"},
    "timestamp": {"type": "date", "ignore_malformed": True},
}

# The fields of the breaker and health events (docs/logging.md, "What the
# setup jobs create in Kibana"): each is searched by exact value (`replica: "api-2"`) and
# counted in aggregations, so each is a keyword. `detail` is the proxy's own
# free text; longer values stay in the document but are not indexed, so one
# long error line cannot make the whole event fail to index.
EVENT_FIELD_MAPPINGS: dict[str, dict[str, Any]] = {
    "event": {"type": "keyword"},
    "proxy": {"type": "keyword"},
    "upstream": {"type": "keyword"},
    "replica": {"type": "keyword"},
    "address": {"type": "keyword"},
    "reason": {"type": "keyword"},
    "state": {"type": "keyword"},
    "detail": {"type": "keyword", "ignore_above": 2048},
}

# What the Kibana setup job creates. Fixed ids make each run replace what an
# earlier run created instead of adding another copy.
KIBANA_URL = f"http://{contract.Alias.KIBANA}:{contract.KIBANA_PORT}"
DATA_VIEW_ID = INDEX_PREFIX
# Not the index pattern itself: Kibana's `override` replaces a data view with
# the same name, and one an operator made by hand for `microstack-logs-*`
# (the name defaults to the title) must be left alone.
DATA_VIEW_NAME = "microstack logs"
# Logstash sets @timestamp on every event, also on lines that are not JSON.
TIME_FIELD = "@timestamp"
SAVED_SEARCH_ID = "microstack-breaker-events"
SAVED_SEARCH_TITLE = "microstack: breaker and health events"
BREAKER_EVENTS = ("replica_down", "replica_up", "pool_empty", "fallback", "health_state", "health_check_failed")
BREAKER_EVENTS_QUERY = f"event:({' or '.join(BREAKER_EVENTS)})"
SAVED_SEARCH_COLUMNS = ("event", "proxy", "upstream", "replica", "reason", "state", "detail", "instance")
# The name under which the search source refers to the data view; Kibana
# resolves it through the saved object's references, never by a raw id.
SEARCH_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


class RenderError(ValueError):
    """A value cannot be written into a logging stack file."""


def _check_password(password: str, config_key: str) -> None:
    # Logstash's config language has no escape for a double quote unless
    # config.support_escapes is on, and a line break would end the value in
    # any of the files; generated passwords are letters and digits.
    bad = sorted({c for c in password if c in '"\\' or not c.isprintable()})
    if not password or bad:
        raise RenderError(
            f"microstack:{config_key} must be a non-empty password without double quotes, backslashes or "
            f"control characters (found {bad!r}); set another with `pulumi config set --secret "
            f"microstack:{config_key}`, or remove it to have one generated"
        )


def _yaml_lines(settings: Mapping[str, Any]) -> str:
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())


def render_elasticsearch_yml(cluster_name: str) -> str:
    """elasticsearch.yml for one node with security on and plain HTTP inside the logging network.

    Setting `xpack.security.enabled` explicitly turns off the image's
    first-start auto-configuration (generated TLS certificates and a random
    elastic password printed once); the password then comes from the secret
    file as the bootstrap password. TLS is off on the transport layer, which a
    single-node cluster allows, and on HTTP, which only the internal logging
    network carries. GeoIP downloads are off so that an air-gapped host does
    not retry them forever; machine learning is off because it reserves memory
    a log store does not need.
    """
    return _yaml_lines(
        {
            "cluster.name": cluster_name,
            "node.name": contract.Alias.ELASTICSEARCH,
            "network.host": "0.0.0.0",
            "http.port": contract.ELASTICSEARCH_PORT,
            "discovery.type": "single-node",
            "xpack.security.enabled": True,
            "xpack.security.enrollment.enabled": False,
            "xpack.security.http.ssl.enabled": False,
            "xpack.security.transport.ssl.enabled": False,
            "xpack.ml.enabled": False,
            "ingest.geoip.downloader.enabled": False,
            "action.destructive_requires_name": True,
        }
    )


def render_kibana_yml(kibana_system_password: str, public_base_url: str) -> str:
    """kibana.yml: Kibana logs in to Elasticsearch as kibana_system with the password written here.

    Kibana reads no password file of its own; kibana.yml uploaded as a secret
    file keeps the password out of the environment, where the image's
    env-to-setting translation would otherwise take it from.
    """
    _check_password(kibana_system_password, "kibanaSystemPassword")
    return _yaml_lines(
        {
            "server.name": contract.Alias.KIBANA,
            "server.host": "0.0.0.0",
            "server.port": contract.KIBANA_PORT,
            "server.publicBaseUrl": public_base_url,
            "server.shutdownTimeout": "5s",
            "elasticsearch.hosts": [ELASTICSEARCH_URL],
            "elasticsearch.username": KIBANA_SYSTEM_USER,
            "elasticsearch.password": kibana_system_password,
            "monitoring.ui.container.elasticsearch.enabled": True,
        }
    )


def render_logstash_pipeline(elastic_password: str) -> str:
    """The Logstash pipeline: GELF in, the JSON log line parsed into fields, daily indices out.

    Logstash's Elasticsearch output has no password-file option, and the
    alternatives are a keystore built at every start (a second JVM start and a
    keystore that is only obfuscated) or an environment variable, which `docker
    inspect` shows. The password is written into the pipeline instead, and the
    pipeline is uploaded as a secret file. Logstash writes as `elastic`: the
    built-in logstash_system user may only ship monitoring data.
    """
    _check_password(elastic_password, "elasticPassword")
    return _TEMPLATES.get_template("logstash.conf.j2").render(
        gelf_port=contract.GELF_PORT,
        parse_failure_tag=PARSE_FAILURE_TAG,
        elasticsearch_url=ELASTICSEARCH_URL,
        user=ELASTIC_USER,
        password=elastic_password,
        index_prefix=INDEX_PREFIX,
    )


def render_ilm_policy(retention_days: int) -> str:
    """The lifecycle policy body: delete an index `retention_days` after it was created.

    Without rollover an index's age counts from its creation, so each daily
    index lives for `retention_days` days after its day began.
    """
    if retention_days < 1:
        raise RenderError(f"microstack:logging.retentionDays must be at least 1 (got {retention_days})")
    return json.dumps(
        {
            "policy": {
                "_meta": {"managed_by": "microstack"},
                "phases": {
                    "hot": {"min_age": "0ms", "actions": {}},
                    "delete": {"min_age": f"{retention_days}d", "actions": {"delete": {}}},
                },
            }
        },
        indent=2,
    )


def render_index_template() -> str:
    """The composable index template for the daily log indices.

    One shard and no replica: a single node can never assign a replica, and an
    index with unassigned replicas stays yellow for ever. The template attaches
    the lifecycle policy, so each new daily index is deleted on time.
    """
    return json.dumps(
        {
            "index_patterns": [INDEX_PATTERN],
            "priority": 200,
            "_meta": {"managed_by": "microstack"},
            "template": {
                "settings": {
                    "number_of_shards": 1,
                    "number_of_replicas": 0,
                    "index.lifecycle.name": ILM_POLICY_NAME,
                },
                "mappings": {"properties": {**LOG_FIELD_MAPPINGS, **EVENT_FIELD_MAPPINGS}},
            },
        },
        indent=2,
    )


def render_data_view() -> str:
    """The body of Kibana's create data view request: the daily indices, by their time field.

    `allowNoIndex` lets the data view open before Logstash has written the
    first daily index, which on a new stack is after this job runs.
    """
    return json.dumps(
        {
            "override": True,
            "data_view": {
                "id": DATA_VIEW_ID,
                "name": DATA_VIEW_NAME,
                "title": INDEX_PATTERN,
                "timeFieldName": TIME_FIELD,
                "allowNoIndex": True,
            },
        },
        indent=2,
    )


def render_saved_search() -> str:
    """The body of the saved search of the breaker and health events, newest first.

    The attributes are those of Kibana's `search` saved object type (8.15,
    saved_search/server/saved_objects/schema.ts); its search source names the
    query in KQL and the data view by reference.
    """
    search_source = {
        "query": {"query": BREAKER_EVENTS_QUERY, "language": "kuery"},
        "filter": [],
        "indexRefName": SEARCH_INDEX_REF,
    }
    return json.dumps(
        {
            "attributes": {
                "title": SAVED_SEARCH_TITLE,
                "description": "Replicas leaving and rejoining the proxy's pools, empty pools, fallback "
                "answers, and the services' own health changes (docs/logging.md).",
                "columns": list(SAVED_SEARCH_COLUMNS),
                "sort": [[TIME_FIELD, "desc"]],
                "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search_source)},
            },
            "references": [{"name": SEARCH_INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}],
        },
        indent=2,
    )


def setup_script() -> str:
    """The setup job's bash script (setup.sh beside this module); see its header."""
    return (Path(__file__).parent / "setup.sh").read_text()


def setup_environment(
    *,
    elasticsearch_url: str,
    elastic_password_file: str,
    kibana_system_password_file: str,
    ilm_policy_file: str,
    index_template_file: str,
    wait_seconds: int,
) -> dict[str, str]:
    """The setup script's environment: where Elasticsearch is and where its inputs are.

    Only paths and names: the passwords stay in their files.
    """
    return {
        "SETUP_TARGET": "elasticsearch",
        "SETUP_ES_URL": elasticsearch_url,
        "SETUP_ELASTIC_PASSWORD_FILE": elastic_password_file,
        "SETUP_KIBANA_SYSTEM_PASSWORD_FILE": kibana_system_password_file,
        "SETUP_ILM_POLICY_NAME": ILM_POLICY_NAME,
        "SETUP_ILM_POLICY_FILE": ilm_policy_file,
        "SETUP_INDEX_TEMPLATE_NAME": INDEX_TEMPLATE_NAME,
        "SETUP_INDEX_TEMPLATE_FILE": index_template_file,
        "SETUP_INDEX_PATTERN": INDEX_PATTERN,
        "SETUP_WAIT_SECONDS": str(wait_seconds),
    }


def kibana_setup_environment(
    *,
    kibana_url: str,
    elastic_password_file: str,
    data_view_file: str,
    saved_search_file: str,
    wait_seconds: int,
) -> dict[str, str]:
    """The setup script's environment for its Kibana steps; it calls Kibana's API as `elastic`."""
    return {
        "SETUP_TARGET": "kibana",
        "SETUP_KIBANA_URL": kibana_url,
        "SETUP_ELASTIC_PASSWORD_FILE": elastic_password_file,
        "SETUP_DATA_VIEW_FILE": data_view_file,
        "SETUP_SAVED_SEARCH_ID": SAVED_SEARCH_ID,
        "SETUP_SAVED_SEARCH_FILE": saved_search_file,
        "SETUP_WAIT_SECONDS": str(wait_seconds),
    }


def elasticsearch_command(password_file: str, entrypoint: str = ES_ENTRYPOINT) -> list[str]:
    """The Elasticsearch container's command: the image's own start, with the password from a file.

    The image reads ELASTIC_PASSWORD_FILE only when the file's mode is exactly
    0400 or 0600, readable by its uid 1000; Docker's copy API writes uploads
    as root, so an uploaded secret has to be world-readable (components/common.py)
    and the image would refuse it. This command does what the image would do:
    it reads the file into the variable just for the image's entrypoint, which
    turns it into the keystore's bootstrap password. The value is then in the
    process environment only, not in the container's configuration that
    `docker inspect` shows.
    """
    return [
        "/bin/bash",
        "-c",
        f'ELASTIC_PASSWORD="$(cat {password_file})" && export ELASTIC_PASSWORD && exec {entrypoint} eswrapper',
    ]


def elasticsearch_health_command(
    password_file: str, url: str = f"http://127.0.0.1:{contract.ELASTICSEARCH_PORT}"
) -> str:
    """Shell health check: the cluster answers an authenticated request and is at least yellow.

    Authenticating proves security is set up with the password from the file,
    not only that the port is open. The credentials go to curl in its config
    on stdin (printf is a shell builtin), so they never show in a process list
    or in the health check's definition.
    """
    return (
        f'printf \'user = "{ELASTIC_USER}:%s"\\n\' "$(cat {password_file})" '
        f"| curl --config - --silent --fail --output /dev/null --max-time 2 "
        f"'{url}/_cluster/health?wait_for_status=yellow&timeout=1s'"
    )


def logstash_health_command(url: str = f"http://127.0.0.1:{LOGSTASH_API_PORT}") -> str:
    """Shell health check: Logstash is up and its monitoring API answers."""
    return f"curl --silent --fail --output /dev/null --max-time 2 '{url}/'"


def kibana_health_command(url: str = f"http://127.0.0.1:{contract.KIBANA_PORT}") -> str:
    """Shell health check: Kibana redirects an anonymous visitor to its login page.

    While Kibana starts, or cannot log in to Elasticsearch, it answers 503
    ("Kibana server is not ready yet"), so the redirect means it is usable.
    """
    return f"curl --silent --head --max-time 2 '{url}/' | grep -q '^HTTP/1.1 302'"
