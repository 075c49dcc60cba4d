"""The logging stack's files, rendered by the pure functions in components/elk/render.py.

Logstash, Elasticsearch and Kibana cannot run here, so these tests parse what
is rendered (YAML, JSON, and the Logstash pipeline with a small parser of its
config language) and check each setting the stack depends on.
"""

from __future__ import annotations

import fnmatch
import json
import re
from datetime import date
from typing import Any

import pytest
import yaml

from components.elk import render
from microstack_common import contract

PASSWORD = "s3cretPassw0rdFromRandom"

# --- A minimal parser of Logstash's config language -------------------------
# Enough for what we render: plugin sections and blocks, `key => value` with
# strings, numbers, booleans and arrays, and comments. A brace out of place
# or a value without a key fails the parse, so the test also proves the text
# is well-formed.

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<arrow>=>)
      | (?P<punct>[{}\[\],])
      | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
      | (?P<word>[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        assert match is not None, f"unparseable pipeline text at: {text[position : position + 40]!r}"
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "comment":
            tokens.append((kind, match.group(kind)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def _next(self) -> tuple[str, str]:
        assert self.index < len(self.tokens), "the pipeline ends inside a block"
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _expect(self, value: str) -> None:
        token = self._next()
        assert token[1] == value, f"expected {value!r}, got {token[1]!r}"

    def _value(self) -> Any:
        kind, text = self._next()
        if kind == "string":
            return text[1:-1]
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "word" and text in ("true", "false"):
            return text == "true"
        if text == "[":
            items = []
            while self._peek() != ("punct", "]"):
                items.append(self._value())
                if self._peek() == ("punct", ","):
                    self._next()
            self._expect("]")
            return items
        raise AssertionError(f"unexpected value token {text!r}")

    def block(self) -> dict[str, Any]:
        """Parse `{ ... }`: plugins (name { ... }) become lists, settings (key => value) values."""
        self._expect("{")
        body: dict[str, Any] = {}
        while self._peek() != ("punct", "}"):
            kind, name = self._next()
            assert kind == "word", f"expected a name, got {name!r}"
            if self._peek() == ("arrow", "=>"):
                self._next()
                assert name not in body, f"setting {name} given twice"
                body[name] = self._value()
            else:
                body.setdefault(name, []).append(self.block())
        self._expect("}")
        return body

    def sections(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        while self._peek() is not None:
            _, name = self._next()
            assert name in ("input", "filter", "output"), f"unknown section {name!r}"
            assert name not in result, f"section {name} given twice"
            result[name] = self.block()
        return result


def parse_pipeline(text: str) -> dict[str, dict[str, Any]]:
    return _Parser(text).sections()


def only_plugin(section: dict[str, Any], name: str) -> dict[str, Any]:
    assert list(section) == [name], f"expected only a {name} plugin, got {list(section)}"
    assert len(section[name]) == 1
    return section[name][0]


# --- The Logstash pipeline -------------------------------------------------


@pytest.fixture(scope="module")
def pipeline() -> dict[str, dict[str, Any]]:
    return parse_pipeline(render.render_logstash_pipeline(PASSWORD))


def test_pipeline_has_exactly_input_filter_and_output(pipeline: dict[str, dict[str, Any]]) -> None:
    assert set(pipeline) == {"input", "filter", "output"}


def test_pipeline_input_is_gelf_over_udp_on_the_contract_port(pipeline: dict[str, dict[str, Any]]) -> None:
    gelf = only_plugin(pipeline["input"], "gelf")
    assert gelf["port"] == contract.GELF_PORT
    assert gelf["use_udp"] is True
    assert gelf["use_tcp"] is False


def test_pipeline_parses_the_message_field_as_json_and_tags_lines_that_are_not(
    pipeline: dict[str, dict[str, Any]],
) -> None:
    parse = only_plugin(pipeline["filter"], "json")
    assert parse["source"] == "message"
    # No target: the line's fields (request_id, service, ...) become top-level
    # fields, which is what the documented Kibana query searches.
    assert "target" not in parse
    assert parse["tag_on_failure"] == [render.PARSE_FAILURE_TAG]
    # Skipping invalid JSON silently would drop the tag that marks such lines.
    assert parse.get("skip_on_invalid_json", False) is False


def test_pipeline_output_writes_daily_indices_to_elasticsearch_as_elastic(
    pipeline: dict[str, dict[str, Any]],
) -> None:
    out = only_plugin(pipeline["output"], "elasticsearch")
    assert out["hosts"] == [f"http://{contract.Alias.ELASTICSEARCH}:{contract.ELASTICSEARCH_PORT}"]
    assert out["user"] == "elastic"
    assert out["password"] == PASSWORD
    assert out["index"] == "microstack-logs-%{+YYYY.MM.dd}"


def test_pipeline_output_leaves_templates_and_lifecycle_to_the_setup_job(
    pipeline: dict[str, dict[str, Any]],
) -> None:
    out = only_plugin(pipeline["output"], "elasticsearch")
    # With ILM or data streams on, the output ignores `index` and writes to a
    # rollover alias or a data stream instead of the daily indices.
    assert out["ilm_enabled"] is False
    assert out["data_stream"] is False
    assert out["manage_template"] is False


def test_daily_index_names_match_the_index_template_pattern(pipeline: dict[str, dict[str, Any]]) -> None:
    index = only_plugin(pipeline["output"], "elasticsearch")["index"]
    today = index.replace("%{+YYYY.MM.dd}", date(2026, 11, 26).strftime("%Y.%m.%d"))
    template = json.loads(render.render_index_template())
    assert any(fnmatch.fnmatchcase(today, pattern) for pattern in template["index_patterns"])


@pytest.mark.parametrize("bad", ['pass"word', "pass\\word", "pass\nword", ""])
def test_pipeline_refuses_a_password_it_cannot_quote(bad: str) -> None:
    with pytest.raises(render.RenderError, match="microstack:elasticPassword"):
        render.render_logstash_pipeline(bad)


def test_pipeline_keeps_shell_and_yaml_special_characters_in_a_password() -> None:
    awkward = "p$ss'w0rd {x} #1 %{y}"
    out = only_plugin(parse_pipeline(render.render_logstash_pipeline(awkward))["output"], "elasticsearch")
    assert out["password"] == awkward


# --- elasticsearch.yml ------------------------------------------------------


def test_elasticsearch_is_a_single_node_with_security_on() -> None:
    settings = yaml.safe_load(render.render_elasticsearch_yml("microstack-dev"))
    assert settings["cluster.name"] == "microstack-dev"
    assert settings["discovery.type"] == "single-node"
    assert settings["xpack.security.enabled"] is True
    assert settings["http.port"] == contract.ELASTICSEARCH_PORT
    # Reachable from Logstash and Kibana on the logging network, not only loopback.
    assert settings["network.host"] == "0.0.0.0"


def test_elasticsearch_settings_are_all_scalars_for_the_keys_elasticsearch_knows() -> None:
    settings = yaml.safe_load(render.render_elasticsearch_yml("c"))
    assert all(isinstance(value, str | int | bool) for value in settings.values())
    assert all(re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", key) for key in settings)


# --- kibana.yml -------------------------------------------------------------


def test_kibana_logs_in_as_kibana_system_with_the_given_password() -> None:
    settings = yaml.safe_load(render.render_kibana_yml(PASSWORD, "http://127.0.0.1:5601"))
    assert settings["elasticsearch.username"] == "kibana_system"
    assert settings["elasticsearch.password"] == PASSWORD
    assert settings["elasticsearch.hosts"] == [f"http://{contract.Alias.ELASTICSEARCH}:{contract.ELASTICSEARCH_PORT}"]


def test_kibana_listens_on_its_contract_port_and_knows_its_public_url() -> None:
    settings = yaml.safe_load(render.render_kibana_yml(PASSWORD, "http://127.0.0.1:15601"))
    assert settings["server.port"] == contract.KIBANA_PORT
    assert settings["server.host"] == "0.0.0.0"
    assert settings["server.publicBaseUrl"] == "http://127.0.0.1:15601"


@pytest.mark.parametrize("awkward", ["a: b", "#start", "yes", "012345", "x' y", "&anchor *alias", "é ü"])
def test_kibana_password_survives_yaml_special_forms(awkward: str) -> None:
    settings = yaml.safe_load(render.render_kibana_yml(awkward, "http://127.0.0.1:5601"))
    assert settings["elasticsearch.password"] == awkward


def test_kibana_refuses_a_password_with_a_line_break() -> None:
    with pytest.raises(render.RenderError, match="microstack:kibanaSystemPassword"):
        render.render_kibana_yml("a\nb", "http://127.0.0.1:5601")


# --- Lifecycle policy and index template ------------------------------------


@pytest.mark.parametrize("days", [1, 7, 30, 3650])
def test_lifecycle_policy_deletes_indices_after_the_retention(days: int) -> None:
    policy = json.loads(render.render_ilm_policy(days))["policy"]
    delete = policy["phases"]["delete"]
    assert delete["min_age"] == f"{days}d"
    assert "delete" in delete["actions"]


@pytest.mark.parametrize("days", [0, -1])
def test_lifecycle_policy_refuses_a_retention_below_one_day(days: int) -> None:
    with pytest.raises(render.RenderError, match="retentionDays"):
        render.render_ilm_policy(days)


def test_index_template_attaches_the_lifecycle_policy() -> None:
    template = json.loads(render.render_index_template())
    assert template["template"]["settings"]["index.lifecycle.name"] == render.ILM_POLICY_NAME


def test_index_template_fits_a_single_node() -> None:
    settings = json.loads(render.render_index_template())["template"]["settings"]
    assert settings["number_of_replicas"] == 0
    assert settings["number_of_shards"] == 1


def test_index_template_maps_the_log_fields_for_exact_search() -> None:
    properties = json.loads(render.render_index_template())["template"]["mappings"]["properties"]
    for field in ("request_id", "service", "instance", "level"):
        assert properties[field]["type"] == "keyword", field
    assert properties["message"]["type"] == "text"
    # A malformed timestamp must not make Elasticsearch reject the whole line.
    assert properties["timestamp"] == {"type": "date", "ignore_malformed": True}


# --- The setup job and the containers' commands -----------------------------


# The breaker event schema's fields and events (docs/logging.md).
SCHEMA_FIELDS = ("event", "proxy", "upstream", "replica", "address", "reason", "detail", "state")
SCHEMA_EVENTS = {"replica_down", "replica_up", "health_check_failed", "pool_empty", "fallback", "health_state"}


def test_index_template_maps_every_breaker_event_field_as_a_keyword() -> None:
    properties = json.loads(render.render_index_template())["template"]["mappings"]["properties"]
    for field in SCHEMA_FIELDS:
        assert properties[field]["type"] == "keyword", field
    # The shared fields keep their mappings beside them.
    assert properties["message"]["type"] == "text"
    assert properties["request_id"]["type"] == "keyword"


def test_index_template_indexes_short_details_and_keeps_long_ones_unindexed() -> None:
    detail = json.loads(render.render_index_template())["template"]["mappings"]["properties"]["detail"]
    # Elasticsearch rejects a keyword term over 32766 bytes; ignore_above must stay well below.
    assert 256 <= detail["ignore_above"] <= 32766 // 4


# --- What the Kibana setup job creates ----------------------------------------


def test_data_view_covers_the_daily_indices_by_their_timestamp_under_a_fixed_id() -> None:
    body = json.loads(render.render_data_view())
    assert body["override"] is True
    view = body["data_view"]
    assert view["id"] == "microstack-logs"
    assert view["title"] == "microstack-logs-*"
    assert fnmatch.fnmatch(f"{render.INDEX_PREFIX}-2026.01.31", view["title"])
    assert view["timeFieldName"] == "@timestamp"
    # Another name than the title: `override` replaces by name, and a data view
    # made by hand for the pattern is named after it.
    assert view["name"] and view["name"] != view["title"]
    assert view["allowNoIndex"] is True


def _search_source() -> dict[str, Any]:
    attributes = json.loads(render.render_saved_search())["attributes"]
    source: dict[str, Any] = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
    return source


def test_saved_search_queries_exactly_the_breaker_and_health_events_in_kql() -> None:
    query = _search_source()["query"]
    assert query["language"] == "kuery"
    match = re.fullmatch(r"event:\((.+)\)", query["query"])
    assert match, query["query"]
    assert set(match.group(1).split(" or ")) == SCHEMA_EVENTS


def test_saved_search_refers_to_the_data_view_by_reference() -> None:
    body = json.loads(render.render_saved_search())
    source = _search_source()
    assert "index" not in source
    assert body["references"] == [
        {
            "name": source["indexRefName"],
            "type": "index-pattern",
            "id": json.loads(render.render_data_view())["data_view"]["id"],
        }
    ]


def test_saved_search_shows_the_event_fields_newest_first() -> None:
    attributes = json.loads(render.render_saved_search())["attributes"]
    assert attributes["columns"][0] == "event"
    assert {"proxy", "upstream", "replica", "reason", "detail", "instance"} <= set(attributes["columns"])
    mapped = json.loads(render.render_index_template())["template"]["mappings"]["properties"]
    assert set(attributes["columns"]) <= set(mapped)
    assert attributes["sort"] == [["@timestamp", "desc"]]
    assert attributes["title"]


# --- The setup job and the containers' commands -----------------------------


def _required_variables(section: str) -> tuple[set[str], set[str]]:
    """The SETUP_* variables the script requires and defaults, in its shared part and in one target's case."""
    script = render.setup_script()
    shared = script.split("\ncase $SETUP_TARGET in", 1)[0]
    body = script.split(f"\n  {section})\n", 1)[1].split("\n    ;;", 1)[0]
    text = f"{shared}\n{body}"
    required = set(re.findall(r'^\s*: "\$\{(SETUP_[A-Z_]+):\?', text, re.MULTILINE))
    defaulted = set(re.findall(r'^\s*: "\$\{(SETUP_[A-Z_]+):=', text, re.MULTILINE))
    return required, defaulted


def test_setup_environment_supplies_every_variable_the_script_requires() -> None:
    required, defaulted = _required_variables("elasticsearch")
    environment = render.setup_environment(
        elasticsearch_url="http://elasticsearch:9200",
        elastic_password_file="/run/secrets/elastic_password",
        kibana_system_password_file="/run/secrets/kibana_system_password",
        ilm_policy_file="/p.json",
        index_template_file="/t.json",
        wait_seconds=60,
    )
    assert "SETUP_ES_URL" in required, "the script declares no required variables"
    assert required <= set(environment)
    assert set(environment) <= required | defaulted
    assert environment["SETUP_TARGET"] == "elasticsearch"


def test_kibana_setup_environment_supplies_every_variable_the_script_requires() -> None:
    required, defaulted = _required_variables("kibana")
    environment = render.kibana_setup_environment(
        kibana_url="http://kibana:5601",
        elastic_password_file="/run/secrets/elastic_password",
        data_view_file="/d.json",
        saved_search_file="/s.json",
        wait_seconds=60,
    )
    assert "SETUP_KIBANA_URL" in required
    assert required <= set(environment)
    assert set(environment) <= required | defaulted
    assert environment["SETUP_TARGET"] == "kibana"
    assert environment["SETUP_SAVED_SEARCH_ID"] == render.SAVED_SEARCH_ID
    assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in environment)


def test_setup_environment_names_password_files_not_passwords() -> None:
    environment = render.setup_environment(
        elasticsearch_url="http://elasticsearch:9200",
        elastic_password_file=contract.ELASTIC_PASSWORD_FILE,
        kibana_system_password_file=contract.KIBANA_SYSTEM_PASSWORD_FILE,
        ilm_policy_file="/p.json",
        index_template_file="/t.json",
        wait_seconds=60,
    )
    assert environment["SETUP_ELASTIC_PASSWORD_FILE"] == contract.ELASTIC_PASSWORD_FILE
    assert environment["SETUP_KIBANA_SYSTEM_PASSWORD_FILE"] == contract.KIBANA_SYSTEM_PASSWORD_FILE
    assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in environment)


def test_elasticsearch_command_reads_the_password_file_and_starts_the_image_entrypoint() -> None:
    command = render.elasticsearch_command(contract.ELASTIC_PASSWORD_FILE)
    assert command[:2] == ["/bin/bash", "-c"]
    assert f"$(cat {contract.ELASTIC_PASSWORD_FILE})" in command[2]
    assert command[2].endswith("exec /usr/local/bin/docker-entrypoint.sh eswrapper")
