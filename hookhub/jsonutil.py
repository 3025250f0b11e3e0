"""JSON in and out without ever passing money through a float.

``loads`` parses every non-integer number as ``Decimal`` and refuses ``NaN``/``Infinity``;
``dumps`` writes ``Decimal`` values as exact number literals.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number hookhub accepts")


def loads(text: str | bytes) -> Any:
    """Parse JSON with ``Decimal`` for fractions; raise ``ValueError`` for anything unusable.

    Nesting too deep for the parser and integers too long to convert surface as ``ValueError`` too,
    so callers need to handle exactly one exception type.
    """
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ValueError("JSON is not valid UTF-8") from exc


def dumps(value: Any, **kwargs: Any) -> str:
    """Serialize to JSON, writing each ``Decimal`` as its exact literal (``Decimal("10.50")`` -> ``10.50``)."""
    literals: dict[str, str] = {}

    def _default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError(f"cannot write {obj} as JSON")
            placeholder = f"@@decimal-{uuid.uuid4().hex}@@"
            literals[placeholder] = format(obj, "f")  # plain notation, every digit kept
            return placeholder
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    text = json.dumps(value, default=_default, **kwargs)
    for placeholder, literal in literals.items():
        text = text.replace(f'"{placeholder}"', literal)
    return text


def to_plain(value: Any) -> Any:
    """A copy that stdlib ``json.dumps`` accepts: ``Decimal`` becomes its exact string."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
