"""JSON Schemas for request bodies that the routes validate by hand."""

from __future__ import annotations

from typing import Any


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every local `$ref` to its `$defs` replaced by the definition itself, so it
    can sit inside an OpenAPI document (where `#/$defs/...` would point at the document)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)
