"""Schema-based fuzzing of every route with hypothesis: bodies, queries and path values
drawn from the served OpenAPI schema (and junk beside it). Zero 5xx, no tracebacks."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.server import Running
from tests.serve.test_api import png

RECORDS = b'{"type": "document", "user_id": "alice", "doc_id": "f1", "text": "fuzzed"}\n'

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SMALL = {"max_new_tokens": 8, "max_tokens": 8, "max_completion_tokens": 8, "steps": 2}
IDS = st.sampled_from(["alice", "acme-bob", "nobody", "a1", "i1", ""]) | st.text(max_size=30)
# Values that reach past validation into the engine, beside random ones.
HINTS = {
    "strategy": st.sampled_from(["rag", "none", "profile", "keywords"]),
    "retriever": st.sampled_from(["bm25", "recency"]),
    "model": st.sampled_from(["pop", "pgen/rag", "pgen"]),
    "user": st.sampled_from(["alice", "acme-bob"]),
}


def from_schema(schema: dict[str, Any], components: dict[str, Any], name: str = "") -> Any:
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[-1]], components, name)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, components, name) for s in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        top = min(schema.get("maxLength", 40), 40)
        text = st.text(min_size=min(schema.get("minLength", 0), top), max_size=top)
        if name in HINTS:
            return HINTS[name] | text
        return text | IDS if name.endswith("_id") else text
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**40)))
        high = min(schema.get("maximum", 2**40), SMALL.get(name, 2**40))
        return st.integers(min_value=low, max_value=max(low, high))
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum"),
            max_value=schema.get("maximum"),
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components, name), max_size=3)
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        fields = {k: from_schema(v, components, k) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    return JSON


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]
    # Deletions last: a user deleted early would turn every later route into a 404.
    return sorted(found, key=lambda op: op[0] == "DELETE")


def request_strategy(path: str, operation: dict[str, Any], components: dict[str, Any]) -> Any:
    params = operation.get("parameters", [])
    in_path = {p["name"]: IDS for p in params if p["in"] == "path"}
    query = {
        p["name"]: from_schema(p.get("schema", {}), components, p["name"])
        for p in params
        if p["in"] == "query"
    }
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = from_schema(content["application/json"]["schema"], components) | JSON
    elif "multipart/form-data" in content:
        files = st.binary(max_size=200) | st.just(png()) | st.just(RECORDS)
        body = files.map(lambda data: {"__file__": data})
    else:
        body = st.none()
    return st.tuples(
        st.fixed_dictionaries(in_path), st.fixed_dictionaries({}, optional=query), body
    )


def send(client: httpx.Client, method: str, path: str, drawn: Any) -> httpx.Response:
    in_path, query, body = drawn
    url = path.format(**{k: quote(str(v), safe="") or "x" for k, v in in_path.items()})
    options: dict[str, Any] = {"params": {k: v for k, v in query.items() if v is not None}}
    if isinstance(body, dict) and "__file__" in body:
        options["files"] = {"file": ("f.jsonl", body["__file__"])}
    elif body is not None:
        options["json"] = body
    return client.request(method, url, **options)


def fuzzer(
    server: Running, method: str, path: str, who: str, drawn: Any, seen: dict[str, set[int]]
) -> Any:
    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(drawn)
    def fuzz(values: Any) -> None:
        with server.client(who) as client:
            response = send(client, method, path, values)
        seen.setdefault(f"{method} {path}", set()).add(response.status_code)
        if response.status_code == 503:  # no image model here: the one 5xx allowed
            assert path.endswith("/images") and "model_unavailable" in response.text
        else:
            assert response.status_code < 500, (method, path, values, response.text[:500])
        assert "Traceback" not in response.text
        if response.status_code >= 400:
            assert "error" in response.json()

    return fuzz


def test_every_route_survives_fuzzing(server: Running) -> None:
    with server.client("acme") as client:
        schema = client.get("/openapi.json").json()
    components = schema.get("components", {}).get("schemas", {})
    ops = operations(schema)
    assert len(ops) >= 25
    seen: dict[str, set[int]] = {}
    for method, path, operation in ops:
        who = "admin" if path.startswith("/admin") else "acme"
        fuzzer(server, method, path, who, request_strategy(path, operation, components), seen)()
    print({route: sorted(codes) for route, codes in seen.items()})
    assert len(seen) == len(ops)
    assert sum(any(code < 300 for code in codes) for codes in seen.values()) >= 15
