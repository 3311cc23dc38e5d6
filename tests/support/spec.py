"""Validating requests and responses against Cal.com's OpenAPI 3.0 spec with jsonschema.

OpenAPI 3.0 is not JSON Schema: ``nullable: true`` becomes a null alternative, and
``oneOf`` is read as ``anyOf`` because the spec's create-booking alternatives
overlap, so a strict ``oneOf`` rejects every valid body (docs/testing.md).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema

from tests.support.shared import openapi


def _convert(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: _convert(value) for key, value in node.items()}
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_convert(item) for item in node]
    return node


@cache
def _components() -> dict:
    return _convert(copy.deepcopy(openapi()["components"]))


def validator(schema: dict) -> jsonschema.Draft7Validator:
    root = {**schema, "components": _components()}
    return jsonschema.Draft7Validator(root)


def component(name: str, *, closed: tuple[str, ...] = ()) -> jsonschema.Draft7Validator:
    """A validator for ``#/components/schemas/<name>``; ``closed`` paths forbid unknown keys.

    ``closed`` names the schema itself ("") and nested property paths ("attendee")
    that Cal.com validates with forbidNonWhitelisted (REFERENCE §3).
    """
    schema = copy.deepcopy(_components()["schemas"][name])
    for path in closed:
        target = schema
        for part in [p for p in path.split(".") if p]:
            prop = target["properties"][part]
            if "allOf" in prop and len(prop["allOf"]) == 1:
                ref = prop["allOf"][0]["$ref"].rsplit("/", 1)[-1]
                prop = target["properties"][part] = copy.deepcopy(_components()["schemas"][ref])
            target = prop
        target["additionalProperties"] = False
    return validator(schema)


def errors_of(validator_: jsonschema.Draft7Validator, instance: Any) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                  for e in validator_.iter_errors(instance))


def operation(path: str, method: str) -> dict:
    return openapi()["paths"][path][method.lower()]


def response_validator(path: str, method: str, status: int) -> jsonschema.Draft7Validator:
    schema = operation(path, method)["responses"][str(status)]["content"]["application/json"]["schema"]
    return validator(_convert(copy.deepcopy(schema)))


def query_problems(path: str, method: str, query: dict[str, str]) -> list[str]:
    """Names the spec does not declare, and values outside a declared enum."""
    declared = {p["name"]: p for p in operation(path, method).get("parameters", [])
                if p["in"] == "query"}
    problems = []
    for name, value in query.items():
        if name not in declared:
            problems.append(f"{name}: not a query parameter of {method} {path}")
            continue
        schema = declared[name].get("schema") or {}
        enum = schema.get("enum") or schema.get("items", {}).get("enum")
        if enum:
            values = value.split(",") if schema.get("type") == "array" else [value]
            problems += [f"{name}: {v!r} not in {enum}" for v in values if v not in enum]
    return problems


def header_names(path: str, method: str) -> set[str]:
    return {p["name"].lower() for p in operation(path, method).get("parameters", [])
            if p["in"] == "header"}
