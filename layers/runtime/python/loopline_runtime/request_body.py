"""Reading a prediction request's JSON body without letting any body crash the handler.

Every way `json.loads` can fail on hostile input (malformed text, nesting deep enough to exhaust the recursion
limit, integers past CPython's 4,300-digit conversion limit, the non-standard NaN/Infinity literals) becomes an
`InvalidRequest` (a 400), and nothing the caller sent is echoed back at length.
"""

from __future__ import annotations

import json
from typing import Any

from loopline_runtime.errors import InvalidRequest

# Lambda's synchronous payload limit; API Gateway would already refuse more than 10 MB.
MAX_BODY_BYTES = 6 * 1024 * 1024
# An integer longer than this cannot be a float64 exactly; it is read as a float (inf past ~309 digits), which the
# schema check then refuses as "not a finite number", instead of building a huge Python int.
_EXACT_INTEGER_DIGITS = 18
PREVIEW_CHARS = 40


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """`repr(value)` cut to `limit` characters, saying how long it was: error messages never echo a whole value."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def _read_integer(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= _EXACT_INTEGER_DIGITS else float(text)


def _refuse_constant(name: str) -> Any:
    raise InvalidRequest(f"the request body uses {name}, which is not JSON; send null for a missing value")


def parse_json_body(body: str | None) -> Any:
    """The decoded JSON of a request body; InvalidRequest, with a short reason, for anything that is not."""
    if not body:
        raise InvalidRequest('the request body is empty; send JSON like {"records": [{"feature": value, ...}]}')
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise InvalidRequest(f"the request body has {size:,} bytes; send at most {MAX_BODY_BYTES:,} per request")
    try:
        return json.loads(body, parse_int=_read_integer, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:
        raise InvalidRequest("the request body nests arrays or objects too deeply; records are flat objects") from None
    except (ValueError, OverflowError):
        raise InvalidRequest("the request body has a number that cannot be read") from None
