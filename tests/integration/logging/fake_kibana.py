"""A stand-in for the part of Kibana's HTTP API the Kibana setup job calls, strict about what Kibana refuses.

Kibana cannot be installed here. The job needs four things from it, each
modelled on Kibana 8.15 (the version the images config pins):

- `GET /api/status`: 503 until Kibana's core services are available, 200
  after (core-status-server-internal, routes/status.ts). Before that, every
  other route answers 503 too ("Kibana server is not ready yet").
- `POST /api/data_views/data_view`: the body is `{override?, refresh_fields?,
  data_view}` and nothing else, `data_view` a data view spec with a `title`
  (data_views server/rest_api_routes/schema.ts, dataViewSpecSchema;
  @kbn/config-schema objects refuse unknown keys). A data view whose name
  (the title when no name is given) is taken is refused unless `override`
  is true, which deletes the other one first (data_views.ts,
  createSavedObject). The first data view becomes the default.
- `POST /api/saved_objects/<type>/<id>?overwrite=`: `{attributes, references?}`;
  an existing id answers 409 unless `overwrite=true` (core saved objects,
  routes/create.ts). Attributes of a `search` are checked against the
  saved search type's schema (saved_search/server/saved_objects/schema.ts).
- Every request authenticates with HTTP basic; every POST carries a
  `kbn-xsrf` header (400 without) and a JSON content type (415 otherwise).

What it stores is readable by the tests (`data_views`, `saved_objects`,
`default_data_view`), as is every request it got.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.integration.logging.fake_elasticsearch import Request

Answer = tuple[int, dict[str, object]]

# dataViewSpecSchema's keys (8.15); anything else is refused.
DATA_VIEW_SPEC_KEYS = frozenset(
    {
        "title",
        "version",
        "id",
        "type",
        "timeFieldName",
        "sourceFilters",
        "fields",
        "typeMeta",
        "fieldFormats",
        "fieldAttrs",
        "allowNoIndex",
        "runtimeFieldMap",
        "name",
        "namespaces",
    }
)
CREATE_DATA_VIEW_KEYS = frozenset({"override", "refresh_fields", "data_view"})
CREATE_SAVED_OBJECT_KEYS = frozenset(
    {
        "attributes",
        "migrationVersion",
        "coreMigrationVersion",
        "typeMigrationVersion",
        "references",
        "initialNamespaces",
    }
)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_sort(value: object) -> bool:
    # Either one [field, direction] pair or a list of them.
    def pair(item: object) -> bool:
        return _is_str_list(item) and len(item) <= 2  # type: ignore[arg-type]

    return isinstance(value, list) and (pair(value) or all(pair(v) for v in value))


def _is_search_meta(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"searchSourceJSON"} and _is_str(value["searchSourceJSON"])


# The saved search attributes (SCHEMA_SEARCH_BASE of 8.15) the job may send: key -> (required, check).
SEARCH_ATTRIBUTES: dict[str, tuple[bool, Callable[[object], bool]]] = {
    "title": (True, _is_str),
    "description": (False, _is_str),
    "columns": (False, _is_str_list),
    "sort": (False, _is_sort),
    "grid": (False, lambda v: isinstance(v, dict)),
    "hideChart": (False, _is_bool),
    "isTextBasedQuery": (False, _is_bool),
    "kibanaSavedObjectMeta": (True, _is_search_meta),
    "timeRestore": (False, _is_bool),
    "breakdownField": (False, _is_str),
}


def _error(status: int, message: str) -> Answer:
    names = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict", 415: "Unsupported Media Type"}
    return status, {"statusCode": status, "error": names.get(status, "Error"), "message": message}


class _Invalid(Exception):
    """The request body does not validate; Kibana answers 400 with the reason."""


@dataclass
class FakeKibana:
    """Behaviour knobs, set by a test before it runs the script, and what the script stored."""

    users: dict[str, str] = field(default_factory=dict)
    # /api/status answers 503 this many times before Kibana is available.
    not_ready_for: int = 0
    # path prefix -> (status, body) for requests that must fail.
    failures: dict[str, Answer] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    data_views: dict[str, dict[str, Any]] = field(default_factory=dict)
    saved_objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    default_data_view: str | None = None
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def changes(self) -> list[Request]:
        """The requests other than the status polls, in order."""
        return [r for r in self.requests if not r.path.startswith("/api/status")]

    def status_polls(self) -> int:
        return sum(1 for r in self.requests if r.path.startswith("/api/status"))

    def answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            if self.users.get(request.user or "") != request.password or request.password is None:
                return _error(401, "[security_exception]: unable to authenticate user")
            url = urlsplit(request.path)
            if url.path == "/api/status" and request.method == "GET":
                if self.not_ready_for > 0:
                    self.not_ready_for -= 1
                    return 503, {"status": {"overall": {"level": "unavailable"}}}
                return 200, {"status": {"overall": {"level": "available"}}}
            if self.not_ready_for > 0:
                return 503, {"message": "Kibana server is not ready yet"}
            for prefix, failure in self.failures.items():
                if url.path.startswith(prefix):
                    return failure
            if request.method == "POST":
                if not request.headers.get("kbn-xsrf"):
                    return _error(400, "Request must contain a kbn-xsrf header.")
                if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                    return _error(415, "Unsupported Media Type")
            try:
                body = json.loads(request.body) if request.body else None
                if request.method == "POST" and url.path == "/api/data_views/data_view":
                    return self._create_data_view(body)
                parts = url.path.split("/")
                if request.method == "POST" and len(parts) == 5 and parts[:3] == ["", "api", "saved_objects"]:
                    return self._create_saved_object(unquote(parts[3]), unquote(parts[4]), url.query, body)
            except (_Invalid, ValueError) as error:
                return _error(400, str(error))
            return _error(404, "Not Found")

    def _create_data_view(self, body: object) -> Answer:
        if not isinstance(body, dict):
            raise _Invalid("[request body]: expected a plain object value")
        _only(body, CREATE_DATA_VIEW_KEYS, "request body")
        for key in ("override", "refresh_fields"):
            if key in body and not _is_bool(body[key]):
                raise _Invalid(f"[request body.{key}]: expected value of type [boolean]")
        spec = body.get("data_view")
        if not isinstance(spec, dict):
            raise _Invalid("[request body.data_view]: expected a plain object value")
        _only(spec, DATA_VIEW_SPEC_KEYS, "request body.data_view")
        if not _is_str(spec.get("title")):
            raise _Invalid("[request body.data_view.title]: expected value of type [string]")
        for key in ("id", "name", "timeFieldName"):
            if key in spec and not _is_str(spec[key]):
                raise _Invalid(f"[request body.data_view.{key}]: expected value of type [string]")
        override = bool(body.get("override", False))
        name = spec.get("name") or spec["title"]
        dupe = next((i for i, view in self.data_views.items() if view["name"] == name), None)
        if dupe is not None:
            if not override:
                raise _Invalid(f"Duplicate data view: {name}")
            del self.data_views[dupe]
        view_id = spec.get("id") or str(uuid.uuid4())
        if view_id in self.data_views and not override:
            return _error(409, f"Saved object [index-pattern/{view_id}] conflict")
        stored = {**spec, "id": view_id, "name": name}
        self.data_views[view_id] = stored
        if self.default_data_view is None:
            self.default_data_view = view_id
        return 200, {"data_view": stored}

    def _create_saved_object(self, kind: str, object_id: str, query: str, body: object) -> Answer:
        params = parse_qs(query, keep_blank_values=True)
        _only(params, frozenset({"overwrite"}), "request query")
        overwrite_values = params.get("overwrite", ["false"])
        if len(overwrite_values) != 1 or overwrite_values[0] not in ("true", "false"):
            raise _Invalid("[request query.overwrite]: expected value of type [boolean]")
        if not isinstance(body, dict):
            raise _Invalid("[request body]: expected a plain object value")
        _only(body, CREATE_SAVED_OBJECT_KEYS, "request body")
        attributes = body.get("attributes")
        if not isinstance(attributes, dict):
            raise _Invalid("[request body.attributes]: expected value of type [object]")
        references = body.get("references", [])
        if not isinstance(references, list) or not all(
            isinstance(r, dict) and set(r) == {"name", "type", "id"} and all(_is_str(v) for v in r.values())
            for r in references
        ):
            raise _Invalid("[request body.references]: each must be {name, type, id} strings")
        if kind == "search":
            _check_search(attributes)
        if (kind, object_id) in self.saved_objects and overwrite_values[0] != "true":
            return _error(409, f"Saved object [{kind}/{object_id}] conflict")
        stored: dict[str, object] = {"id": object_id, "type": kind, "attributes": attributes, "references": references}
        self.saved_objects[(kind, object_id)] = stored
        return 200, stored


def _only(values: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise _Invalid(f"[{where}.{unknown[0]}]: definition for this key is missing")


def _check_search(attributes: Mapping[str, object]) -> None:
    _only(attributes, frozenset(SEARCH_ATTRIBUTES), "attributes")
    for key, (required, check) in SEARCH_ATTRIBUTES.items():
        if key not in attributes:
            if required:
                raise _Invalid(f"[attributes.{key}]: expected a value but got [undefined]")
        elif not check(attributes[key]):
            raise _Invalid(f"[attributes.{key}]: invalid value")
