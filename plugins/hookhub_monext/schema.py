"""Requests checked against Monext's published OpenAPI documents before anything is sent.

The plugin carries Monext's own files (``openapi/CheckoutAPI.json``, ``openapi/PayoutAPI.json``), so
every limit comes from the provider rather than from a copy kept by hand. ``Spec.prepare`` walks a
request value through the operation's schema and gives back what is to be sent:

* keys may be written in snake_case (``return_url``) or exactly as Monext spells them
  (``returnURL``); both become Monext's name;
* patterns are matched as Monext's Java server matches them: the whole value, ASCII classes;
* required fields, types, enums, lengths, patterns, numeric bounds and list sizes are checked;
* a key the schema does not declare is refused: a misspelt optional field such as
  ``notification_url`` would otherwise be dropped silently by the provider;
* ``None`` values are left out, and ``datetime`` values become ISO 8601 strings.

Any refusal is a ``ValidationError`` whose ``field`` is the dotted path (``order.amount``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from importlib import resources
from typing import Any

from hookhub import ValidationError

_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")


def snake_case(name: str) -> str:
    """``returnURL`` -> ``return_url``, ``paymentMethodIDs`` -> ``payment_method_ids``."""
    return _CAMEL_BOUNDARY.sub(r"\1_\2", name).lower()


def snake_cases(name: str) -> set[str]:
    """Every snake_case spelling accepted for ``name``: an acronym inside a name may be split off
    (``threeDSMethodNotificationURL`` -> ``three_ds_method_notification_url``) or not."""
    return {snake_case(name), snake_case(_ACRONYM_BOUNDARY.sub(r"\1_\2", name))}


@functools.lru_cache(maxsize=None)
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile a schema pattern; None for one Python cannot read.

    Monext's schemas come from Java annotations, where ``[\\w-\\.]`` is a class holding ``-``
    literally; Python reads it as a bad range, so the hyphen is escaped first. Java's ``\\w`` and
    ``\\d`` are ASCII only, hence ``re.ASCII``.
    """
    for candidate in (pattern, re.sub(r"(\\[wdsWDS])-", r"\1\\-", pattern)):
        try:
            return re.compile(candidate, re.ASCII)
        except re.error:
            continue
    return None


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":  # never a float: money and rates go as int or Decimal
        return isinstance(value, (int, Decimal)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, (list, tuple))
    return True


class Spec:
    """One OpenAPI document, able to check the request of any of its operations."""

    def __init__(self, document: dict[str, Any]):
        self.document = document

    @classmethod
    def load(cls, filename: str) -> Spec:
        """One of the documents shipped in this package's ``openapi`` folder."""
        text = resources.files(__package__).joinpath("openapi", filename).read_text(encoding="utf-8")
        return cls(json.loads(text))

    # -- the document -----------------------------------------------------------------------------

    def has(self, method: str, path: str) -> bool:
        return method.lower() in self.document["paths"].get(path, {})

    def body_schema(self, method: str, path: str) -> dict[str, Any] | None:
        operation = self.document["paths"][path][method.lower()]
        body = operation.get("requestBody")
        if not body:
            return None
        return body["content"]["application/json"].get("schema") or {}

    def parameter_schema(self, method: str, path: str, name: str) -> dict[str, Any]:
        operation = self.document["paths"][path][method.lower()]
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == name:
                return parameter.get("schema", {})
        raise KeyError(f"{method} {path} has no parameter {name}")

    def resolve(self, ref: str) -> dict[str, Any]:
        """A local ``$ref`` (a JSON pointer, which may point inside another schema)."""
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported, not {ref}")
        node: Any = self.document
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node

    def _parts(self, schema: Mapping[str, Any], seen: frozenset[str] = frozenset()) -> list[Mapping[str, Any]]:
        """The schema and all it includes through ``$ref`` and ``allOf``, as flat pieces."""
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:  # a schema that contains itself: its first visit checks it
                return []
            return self._parts(self.resolve(ref), seen | {ref})
        parts = [schema]
        for included in schema.get("allOf", ()):
            parts.extend(self._parts(included, seen))
        return parts

    # -- checking ---------------------------------------------------------------------------------

    def prepare(self, schema: Mapping[str, Any], value: Any, field: str = "body") -> Any:
        """``value`` made ready to send under ``schema``, or ``ValidationError`` naming the field."""
        parts = self._parts(schema)
        if isinstance(value, datetime) and any(p.get("format") == "date-time" for p in parts):
            if value.tzinfo is None:  # never the host's zone: a naive time is taken as UTC
                value = value.replace(tzinfo=timezone.utc)
            value = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for part in parts:
            self._check_scalar(part, value, field)
        if any("properties" in p or "required" in p or "oneOf" in p or p.get("type") == "object" for p in parts):
            if not isinstance(value, Mapping):
                raise ValidationError(field, "must be an object")
            return self._prepare_object(parts, value, field)
        items = next((p["items"] for p in parts if "items" in p), None)
        if isinstance(value, (list, tuple)):
            if items is None:
                return list(value)
            return [self.prepare(items, item, f"{field}[{n}]") for n, item in enumerate(value)]
        return value

    def _check_scalar(self, part: Mapping[str, Any], value: Any, field: str) -> None:
        kind = part.get("type")
        if kind and not _type_ok(kind, value):
            article = "an" if kind[0] in "aeiou" else "a"
            hint = " in minor units (10.50 EUR is 1050)" if kind == "integer" and isinstance(value, (float, Decimal)) else ""
            raise ValidationError(field, f"must be {article} {kind}{hint}")
        if "enum" in part and value not in part["enum"]:
            shown = ", ".join(map(str, part["enum"][:12])) + (", ..." if len(part["enum"]) > 12 else "")
            raise ValidationError(field, f"must be one of {shown}")
        if isinstance(value, str):
            if "maxLength" in part and len(value) > part["maxLength"]:
                raise ValidationError(field, f"must be at most {part['maxLength']} characters long")
            if "minLength" in part and len(value) < part["minLength"]:
                raise ValidationError(field, f"must be at least {part['minLength']} characters long")
            pattern = _pattern(part["pattern"]) if "pattern" in part else None
            # Java's bean validation, which Monext's server runs, matches the whole value.
            if pattern is not None and not pattern.fullmatch(value):
                raise ValidationError(field, f"does not have the expected form ({part['pattern']})")
        elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            if "minimum" in part and value < part["minimum"]:
                raise ValidationError(field, f"must be at least {part['minimum']}")
            if "maximum" in part and value > part["maximum"]:
                raise ValidationError(field, f"must be at most {part['maximum']}")
        elif isinstance(value, (list, tuple)):
            if "maxItems" in part and len(value) > part["maxItems"]:
                raise ValidationError(field, f"must have at most {part['maxItems']} items")
            if "minItems" in part and len(value) < part["minItems"]:
                raise ValidationError(field, f"must have at least {part['minItems']} items")

    def _prepare_object(self, parts: list[Mapping[str, Any]], value: Mapping[str, Any], field: str) -> dict[str, Any]:
        properties: dict[str, list[Mapping[str, Any]]] = {}
        required: set[str] = set()
        extra: Any = None  # additionalProperties: None (not allowed), True, or a schema
        open_object = True  # an object schema that declares nothing accepts anything
        for part in parts + self._branch(parts, value, field):
            for name, sub in part.get("properties", {}).items():
                properties.setdefault(name, []).append(sub)
                open_object = False
            required.update(part.get("required", ()))
            if part.get("additionalProperties") not in (None, False):
                extra = part["additionalProperties"]
            if "oneOf" in part:
                open_object = False
                if "discriminator" in part:
                    name = part["discriminator"]["propertyName"]
                    properties.setdefault(name, [{"type": "string"}])
        if extra is not None or open_object:
            extra = extra if extra is not None else True
        for name in required:  # some schemas require a key they never declare: accept it as it is
            properties.setdefault(name, [])
        by_snake = {alias: name for name in properties for alias in snake_cases(name)}
        prepared: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(field, "keys must be strings")
            name = key if key in properties else by_snake.get(key)
            path = f"{field}.{name or key}" if field != "body" else (name or key)
            if name is None:
                if extra is None:
                    raise ValidationError(path, "is not a field Monext knows here")
                if item is not None:
                    prepared[key] = item if extra is True else self.prepare(extra, item, path)
                continue
            if name in prepared:
                raise ValidationError(path, "is given twice (once in snake_case)")
            if item is None:
                continue
            prepared[name] = self.prepare({"allOf": properties[name]}, item, path)
        for name in sorted(required - prepared.keys()):
            path = f"{field}.{name}" if field != "body" else name
            raise ValidationError(path, "is required")
        return prepared

    def _branch(self, parts: list[Mapping[str, Any]], value: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
        """The parts of the ``oneOf`` branch that ``value``'s discriminator names."""
        chosen: list[Mapping[str, Any]] = []
        for part in parts:
            if "oneOf" not in part:
                continue
            discriminator = part.get("discriminator", {}).get("propertyName")
            branches = {ref["$ref"].rsplit("/", 1)[-1]: ref for ref in part["oneOf"] if "$ref" in ref}
            branches.update({k: {"$ref": v} for k, v in part.get("discriminator", {}).get("mapping", {}).items()})
            if discriminator is None:
                continue  # no way to tell the branches apart without trying each: the provider decides
            selected = value.get(discriminator, value.get(snake_case(discriminator)))
            if selected not in branches:
                path = f"{field}.{discriminator}" if field != "body" else discriminator
                raise ValidationError(path, f"must be one of {', '.join(sorted(branches))}")
            chosen.extend(self._parts(branches[selected]))
        return chosen
