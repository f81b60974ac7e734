"""JSON from strangers: size and nesting are checked before the text is parsed.

``json.loads`` recurses once per nesting level, so 100,000 nested brackets raise ``RecursionError``
(and a multi-gigabyte string is parsed in full before anyone looks at it). :func:`loads_limited`
measures the text first, without recursion, and raises :class:`JSONLimitError` (a ``ValueError``)
with a message a person can act on.
"""

from __future__ import annotations

import json

MAX_DEPTH = 32  # checkpoint metadata and training configs nest 3 levels; 32 leaves room


class JSONLimitError(ValueError):
    """JSON that is too large, too deep or malformed; the message says which."""


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text``, strings skipped; one pass, no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads_limited(data: str | bytes, what: str, max_bytes: int, max_depth: int = MAX_DEPTH):
    """Parse ``data`` (text or UTF-8 bytes) as JSON within ``max_bytes`` and ``max_depth``."""
    size = len(data)
    if size > max_bytes:
        raise JSONLimitError(f"{what} is {size:,} bytes; at most {max_bytes:,} are accepted.")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONLimitError(f"{what} is not UTF-8 text.") from None
    depth = json_depth(data)
    if depth > max_depth:
        raise JSONLimitError(f"{what} nests {depth} levels deep; at most {max_depth} are accepted.")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise JSONLimitError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    except RecursionError:  # a depth the scan could not see (it cannot, but never a traceback)
        raise JSONLimitError(f"{what} nests too deeply.") from None
