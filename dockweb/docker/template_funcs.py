"""The functions a ``--format`` template can call: Go's builtins (``and or not len index
slice print printf println eq ne lt le gt ge html urlquery``), docker/cli's (``json split
join title lower upper pad truncate``) and their header variants; :class:`Func`, with
Go's checks of argument number and constant type; ``lookup_method`` for ``.Label "k"``.
"""

from __future__ import annotations

import unicodedata
import urllib.parse
from typing import Any

from dockweb.docker.gofmt import (
    NO_VALUE,
    Func,
    go_json,
    go_sprint,
    go_sprintf,
    go_sprintln,
    go_type,
    truth,
)

# --- builtin functions -----------------------------------------------------------------------


class CallError(Exception):
    """A function failed; Go reports it as ``error calling <name>: <msg>``."""


class ArgTypeError(Exception):
    """An argument of the wrong type; Go reports ``wrong type for value; ...``."""


def _want_str(v: Any) -> str:
    if not isinstance(v, str):
        raise ArgTypeError(f"wrong type for value; expected string; got {go_type(v)}")
    return v


def _want_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ArgTypeError(f"wrong type for value; expected int; got {go_type(v)}")
    return v


def _want_str_list(v: Any) -> list[str]:
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise ArgTypeError(f"wrong type for value; expected []string; got {go_type(v)}")
    return list(v)


WANT = {"string": _want_str, "int": _want_int, "[]string": _want_str_list}


def _go_upper(s: str) -> str:
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in s)


def _go_lower(s: str) -> str:
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in s)


def _go_title(s: str) -> str:
    """strings.Title: upper-case the first letter of each word."""

    def is_sep(c: str) -> bool:
        if c.isascii():
            return not (c.isalnum() or c == "_")
        if c.isalpha() or c.isdigit():
            return False
        return c.isspace()

    out: list[str] = []
    prev = " "
    for c in s:
        if is_sep(prev):
            t = unicodedata.normalize("NFC", c.title())
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _fn_json(v: Any) -> str:
    return go_json(v)


def _fn_split(s: Any, sep: Any) -> list[str]:
    s, sep = _want_str(s), _want_str(sep)
    if sep == "":
        return list(s)
    return s.split(sep)


def _fn_join(items: Any, sep: Any) -> str:
    return _want_str(sep).join(_want_str_list(items))


def _fn_title(s: Any) -> str:
    return _go_title(_want_str(s))


def _fn_lower(s: Any) -> str:
    return _go_lower(_want_str(s))


def _fn_upper(s: Any) -> str:
    return _go_upper(_want_str(s))


def _fn_pad(s: Any, prefix: Any, suffix: Any) -> str:
    s = _want_str(s)
    if s == "":
        return s
    return " " * _want_int(prefix) + s + " " * _want_int(suffix)


def _fn_truncate(s: Any, length: Any) -> str:
    s, length = _want_str(s), _want_int(length)
    b = s.encode()
    if len(b) < length:
        return s
    if length < 0:
        raise CallError(f"runtime error: slice bounds out of range [:{length}]")
    return b[:length].decode(errors="replace")


def _fn_len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    if v is None or v is NO_VALUE:
        raise CallError("len of nil pointer")
    raise CallError(f"len of type {go_type(v)}")


def _fn_index(v: Any, *keys: Any) -> Any:
    if v is None or v is NO_VALUE:
        raise CallError("index of untyped nil")
    for k in keys:
        if isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise CallError(f"cannot index slice/array with type {go_type(k)}")
            seq = v.encode() if isinstance(v, str) else v
            if k < 0 or k >= len(seq):
                raise CallError(f"index out of range: {k}")
            v = seq[k]
        elif isinstance(v, dict):
            v = v.get(k, NO_VALUE)
        elif v is NO_VALUE or v is None:
            raise CallError("index of nil pointer")
        else:
            raise CallError(f"can't index item of type {go_type(v)}")
    return v


def _fn_slice(v: Any, *idx: Any) -> Any:
    if not isinstance(v, (list, tuple, str)):
        raise CallError(f"can't slice item of type {go_type(v)}")
    if len(idx) > 2:
        raise CallError(f"too many slice indexes: {len(idx)}")
    seq: Any = v.encode() if isinstance(v, str) else v
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(seq)
    if not (0 <= lo <= hi <= len(seq)):
        raise CallError(f"index out of range: {hi if hi > len(seq) else lo}")
    res = seq[lo:hi]
    return res.decode(errors="replace") if isinstance(v, str) else list(res)


def _fn_not(v: Any) -> bool:
    return not truth(v)


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None or v is NO_VALUE:
        return "nil"
    return "complex"


def _fn_eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise CallError("missing argument for comparison")
    for b in bs:
        ka, kb = _basic_kind(a), _basic_kind(b)
        if "complex" in (ka, kb) and not (ka == "nil" or kb == "nil"):
            raise CallError("invalid type for comparison")
        if ka != kb and "nil" not in (ka, kb):
            raise CallError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _fn_ne(a: Any, b: Any) -> bool:
    return not _fn_eq(a, b)


def _fn_lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise CallError("invalid type for comparison")
    if ka != kb:
        raise CallError("incompatible types for comparison")
    return a < b


def _fn_le(a: Any, b: Any) -> bool:
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a: Any, b: Any) -> bool:
    return not _fn_le(a, b)


def _fn_ge(a: Any, b: Any) -> bool:
    return not _fn_lt(a, b)


def _fn_html(*args: Any) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(*args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in s)


def _fn_urlquery(*args: Any) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(*args)
    return urllib.parse.quote_plus(s, safe="-_.~")


def _fn_printf(fmt: Any, *args: Any) -> str:
    return go_sprintf(_want_str(fmt), *args)


def identity(v: Any, *_: Any) -> Any:
    return v




def lookup_method(mapping: dict[str, str]) -> Func:
    """A method that takes one string and returns its value in ``mapping`` or "" (docker's
    ``Label(name string) string`` on containers and volumes)."""
    return Func(lambda key: mapping.get(_want_str(key), ""), 1, types=("string",))


HEADER_LABEL = Func(
    lambda key: _want_str(key).split(".")[-1].replace("-", " ").replace("_", " "),
    1,
    types=("string",),
)


BUILTIN_FUNCS: dict[str, Func] = {
    "and": Func(identity, 1, True),  # evaluated lazily by the executor
    "or": Func(identity, 1, True),
    "not": Func(_fn_not, 1),
    "len": Func(_fn_len, 1),
    "index": Func(_fn_index, 1, True),
    "slice": Func(_fn_slice, 1, True),
    "print": Func(go_sprint, 0, True),
    "println": Func(go_sprintln, 0, True),
    "printf": Func(_fn_printf, 1, True),
    "eq": Func(_fn_eq, 1, True),
    "ne": Func(_fn_ne, 2),
    "lt": Func(_fn_lt, 2),
    "le": Func(_fn_le, 2),
    "gt": Func(_fn_gt, 2),
    "ge": Func(_fn_ge, 2),
    "html": Func(_fn_html, 0, True),
    "urlquery": Func(_fn_urlquery, 0, True),
}

# docker/cli templates.basicFunctions
DOCKER_FUNCS: dict[str, Func] = {
    "json": Func(_fn_json, 1),
    "split": Func(_fn_split, 2, types=("string", "string")),
    "join": Func(_fn_join, 2, types=("[]string", "string")),
    "title": Func(_fn_title, 1, types=("string",)),
    "lower": Func(_fn_lower, 1, types=("string",)),
    "upper": Func(_fn_upper, 1, types=("string",)),
    "pad": Func(_fn_pad, 3, types=("string", "int", "int")),
    "truncate": Func(_fn_truncate, 2, types=("string", "int")),
}


def _header_str(v: Any, *_: Any) -> str:
    return _want_str(v)


# docker/cli templates.HeaderFunctions: the header keeps its text; pad is not replaced.
HEADER_FUNCS: dict[str, Func] = {
    "json": Func(_header_str, 1, types=("string",)),
    "split": Func(_header_str, 2, types=("string", "string")),
    "join": Func(_header_str, 2, types=("string", "string")),
    "title": Func(_header_str, 1, types=("string",)),
    "lower": Func(_header_str, 1, types=("string",)),
    "upper": Func(_header_str, 1, types=("string",)),
    "truncate": Func(_header_str, 2, types=("string", "int")),
}
