"""``--format`` as docker/cli does it: Go templates, tab-aligned tables, ``json``.

Three parts:

* :class:`Template`, an interpreter for the subset of Go's ``text/template`` that people put
  in ``--format``: ``{{.Field}}``, ``.A.B``, ``$`` and ``$var`` (``:=``, ``=``), pipelines,
  ``(...)`` groups, ``if``/``else if``/``else``, ``range`` (with ``$i, $v :=``, ``break``,
  ``continue``), ``with``, ``{{- trim -}}`` markers, ``{{/* comments */}}``, Go's builtin
  functions (``and or not len index slice print printf println eq ne lt le gt ge html
  urlquery``) and docker/cli's (``json split join title lower upper pad truncate``).
  Values print as Go's ``fmt`` ``%v`` does: ``[a b]``, ``map[k:v]`` (keys sorted), ``<nil>``
  inside containers, ``true``, floats as ``%g``. Data are Python dicts, lists, str, int,
  float, bool and None (JSON's types). A dict is looked up by key; a missing key on the data
  passed to :meth:`Template.execute` is an error like a missing struct field in Go ("can't
  evaluate field Foo in type ..."), while a missing key in a nested dict gives Go's map zero
  value, printed ``<no value>``. A dict value that is a :class:`Func` is a method: it gets
  the action's arguments (``{{.Label "com.example"}}``), checked in number and constant type
  as Go checks them, and ``json`` leaves it out.
* :class:`TabWriter`, a port of Go's ``text/tabwriter`` (docker/cli's copy, which measures
  cells in terminal columns): cells are tab-terminated, the trailing cell of a line is not
  aligned, and a column is a block of consecutive lines that have that cell. HTML filtering
  and escape sequences are not supported (docker never enables them).
* :func:`format_rows`, docker/cli's ``formatter.Context.Write``.

Errors are :class:`FormatError`; ``str()`` is what docker prints, e.g. ``template parsing
error: template: :1:2: executing "" at <.Foo>: can't evaluate field Foo in type ...``.
"""

from __future__ import annotations

import math
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class FormatError(Exception):
    """A template that does not parse or does not execute; ``str()`` is Go's message."""


class _NoValue:
    """Go's invalid reflect.Value: a missing map key. Prints ``<no value>``, is false."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()
_MISSING = object()  # no piped value (Go's missingVal)


# --- Go value formatting ---------------------------------------------------------------------


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest decimal digits of ``abs(f)`` and the decimal point position (strconv)."""
    sign, digits, exp = Decimal(repr(abs(f))).normalize().as_tuple()
    ds = "".join(map(str, digits))
    if ds == "0":
        return "0", 1
    assert isinstance(exp, int)
    return ds, len(ds) + exp


def _fixed(ds: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + ds
    if dp >= len(ds):
        return ds + "0" * (dp - len(ds))
    return ds[:dp] + "." + ds[dp:]


def _exp(ds: str, dp: int, two_digit: bool = True) -> str:
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    e = dp - 1
    sign = "-" if e < 0 else "+"
    return f"{mant}e{sign}{abs(e):02d}" if two_digit else f"{mant}e{sign}{abs(e)}"


def go_float(f: float) -> str:
    """``fmt.Sprint(float64)``: strconv's shortest ``%g`` (``%e`` below 1e-4 and from 1e+06)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    ds, dp = _float_digits(f)
    if ds == "0":
        return neg + "0"
    e = dp - 1
    if e < -4 or e >= 6:  # shortest formatting decides with precision 6
        return neg + _exp(ds, dp)
    return neg + _fixed(ds, dp)


def go_json_float(f: float) -> str:
    """encoding/json's float64: ``%f``, or ``%e`` below 1e-6 and from 1e21 (``1e-7``)."""
    if math.isnan(f) or math.isinf(f):
        raise FormatError(f"json: unsupported value: {go_float(f)}")
    neg = "-" if f < 0 else ""
    ds, dp = _float_digits(f)
    if ds == "0":
        return "0"
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        return neg + _exp(ds, dp, two_digit=False)
    return neg + _fixed(ds, dp)


def go_type(v: Any) -> str:
    """The Go type name a JSON-decoded value would have."""
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return type(v).__name__


def go_sprint_value(v: Any) -> str:
    """``fmt.Sprint(v)`` (``%v``) for JSON-like Python values."""
    if v is None:
        return "<nil>"
    if v is NO_VALUE:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_sprint_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        return (
            "map[" + " ".join(f"{go_sprint_value(k)}:{go_sprint_value(x)}" for k, x in items) + "]"
        )
    return str(v)


def _sort_key(k: Any) -> tuple[int, Any]:
    if isinstance(k, (int, float)) and not isinstance(k, bool):
        return (0, k)
    return (1, str(k))


def _json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append(f"\\u{o:04x}")
        elif o in (0x2028, 0x2029) or ch in "<>&":
            # docker 20.10's `json` template function is json.Marshal, which escapes
            # HTML characters (newer CLIs turned that off)
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(v: Any) -> str:
    """encoding/json.Marshal as docker 20.10 uses it: compact, map keys sorted, HTML escaped."""
    if v is None or v is NO_VALUE:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_json_float(v)
    if isinstance(v, str):
        return _json_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    if isinstance(v, dict):
        # A method (a Func value) is no field: encoding/json leaves it out.
        items = sorted(
            ((str(k), x) for k, x in v.items() if not isinstance(x, Func)), key=lambda kv: kv[0]
        )
        return "{" + ",".join(f"{_json_string(k)}:{go_json(x)}" for k, x in items) + "}"
    return _json_string(str(v))


def truth(v: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings, slices and maps are false."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


# --- fmt.Sprintf -----------------------------------------------------------------------------

_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")


def _bad_verb(verb: str, arg: Any) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(arg)}={go_sprint_value(arg)})"


def _pad(s: str, flags: str, width: int | None, zero_ok: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    if "0" in flags and zero_ok:
        sign = s[0] if s[:1] in "+-" else ""
        body = s[len(sign) :]
        return sign + "0" * (width - len(s)) + body
    return " " * (width - len(s)) + s


def _go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif not ch.isprintable() and o > 0x7F:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _format_one(flags: str, width: int | None, prec: int | None, verb: str, arg: Any) -> str:
    is_int = isinstance(arg, int) and not isinstance(arg, bool)
    if verb == "v":
        if isinstance(arg, float) and prec is not None:
            return _pad(_format_one(flags, None, prec, "g", arg), flags, width, True)
        return _pad(go_sprint_value(arg), flags, width, is_int)
    if verb == "T":
        return _pad(go_type(arg), flags, width)
    if verb == "t":
        if not isinstance(arg, bool):
            return _bad_verb(verb, arg)
        return _pad("true" if arg else "false", flags, width)
    if verb in "sq":
        if isinstance(arg, (str, list, tuple, dict)) or arg is None:
            if verb == "q" and isinstance(arg, str):
                s = _go_quote(arg)
            elif verb == "q":
                return _bad_verb(verb, arg)
            else:
                s = go_sprint_value(arg)
            if prec is not None and verb == "s":
                s = s[:prec]
            return _pad(s, flags, width)
        if is_int and verb == "q":
            return _pad("'" + chr(arg) + "'", flags, width)
        return _bad_verb(verb, arg)
    if verb in "dboxXc":
        if is_int:
            if verb == "c":
                return _pad(chr(arg), flags, width)
            base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
            s = format(abs(arg), base)
            if "#" in flags and verb in "xX":
                s = ("0x" if verb == "x" else "0X") + s
            if arg < 0:
                s = "-" + s
            elif "+" in flags:
                s = "+" + s
            elif " " in flags:
                s = " " + s
            return _pad(s, flags, width, True)
        if verb in "xX" and isinstance(arg, str):
            s = arg.encode().hex()
            return _pad(s.upper() if verb == "X" else s, flags, width)
        return _bad_verb(verb, arg)
    if verb in "feEgGF":
        if isinstance(arg, (int, float)) and not isinstance(arg, bool):
            f = float(arg)
            if isinstance(arg, int) and not isinstance(arg, float):
                return _bad_verb(verb, arg)
            if verb in "gG" and prec is None:
                s = go_float(f)
                s = s.upper() if verb == "G" else s
            else:
                p = 6 if prec is None else prec
                s = ("%" + ("+" if "+" in flags else "") + f".{p}{verb}") % f
                if verb in "gG":
                    s = s
            if "+" in flags and not s.startswith(("-", "+")):
                s = "+" + s
            return _pad(s, flags, width, True)
        return _bad_verb(verb, arg)
    return _bad_verb(verb, arg)


def go_sprintf(fmt: str, *args: Any) -> str:
    """A practical ``fmt.Sprintf``: the common verbs, widths, precisions and flags."""
    out: list[str] = []
    argi = 0
    pos = 0
    while pos < len(fmt):
        i = fmt.find("%", pos)
        if i == -1:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:i])
        m = _VERB_RE.match(fmt, i)
        if m is None:
            out.append("%!(NOVERB)")
            pos = len(fmt)
            break
        flags, width_s, prec_s, verb = m.groups()
        pos = m.end()
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                argi += 1
            else:
                out.append("%!(BADWIDTH)")
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                prec = args[argi]
                argi += 1
            else:
                out.append("%!(BADPREC)")
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(flags, width, prec, verb, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(f"{go_type(a)}={go_sprint_value(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def go_sprint(*args: Any) -> str:
    """``fmt.Sprint``: a space between operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_sprint_value(a))
    return "".join(out)


def go_sprintln(*args: Any) -> str:
    return " ".join(go_sprint_value(a) for a in args) + "\n"


# --- builtin functions -----------------------------------------------------------------------


class _CallError(Exception):
    """A function failed; Go reports it as ``error calling <name>: <msg>``."""


class _TypeError(Exception):
    """An argument of the wrong type; Go reports ``wrong type for value; ...``."""


def _want_str(v: Any) -> str:
    if not isinstance(v, str):
        raise _TypeError(f"wrong type for value; expected string; got {go_type(v)}")
    return v


def _want_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _TypeError(f"wrong type for value; expected int; got {go_type(v)}")
    return v


def _want_str_list(v: Any) -> list[str]:
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise _TypeError(f"wrong type for value; expected []string; got {go_type(v)}")
    return list(v)


_WANT = {"string": _want_str, "int": _want_int, "[]string": _want_str_list}


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
        raise _CallError(f"runtime error: slice bounds out of range [:{length}]")
    return b[:length].decode(errors="replace")


def _fn_len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    if v is None or v is NO_VALUE:
        raise _CallError("len of nil pointer")
    raise _CallError(f"len of type {go_type(v)}")


def _fn_index(v: Any, *keys: Any) -> Any:
    if v is None or v is NO_VALUE:
        raise _CallError("index of untyped nil")
    for k in keys:
        if isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise _CallError(f"cannot index slice/array with type {go_type(k)}")
            seq = v.encode() if isinstance(v, str) else v
            if k < 0 or k >= len(seq):
                raise _CallError(f"index out of range: {k}")
            v = seq[k]
        elif isinstance(v, dict):
            v = v.get(k, NO_VALUE)
        elif v is NO_VALUE or v is None:
            raise _CallError("index of nil pointer")
        else:
            raise _CallError(f"can't index item of type {go_type(v)}")
    return v


def _fn_slice(v: Any, *idx: Any) -> Any:
    if not isinstance(v, (list, tuple, str)):
        raise _CallError(f"can't slice item of type {go_type(v)}")
    if len(idx) > 2:
        raise _CallError(f"too many slice indexes: {len(idx)}")
    seq: Any = v.encode() if isinstance(v, str) else v
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(seq)
    if not (0 <= lo <= hi <= len(seq)):
        raise _CallError(f"index out of range: {hi if hi > len(seq) else lo}")
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
        raise _CallError("missing argument for comparison")
    for b in bs:
        ka, kb = _basic_kind(a), _basic_kind(b)
        if "complex" in (ka, kb) and not (ka == "nil" or kb == "nil"):
            raise _CallError("invalid type for comparison")
        if ka != kb and "nil" not in (ka, kb):
            raise _CallError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _fn_ne(a: Any, b: Any) -> bool:
    return not _fn_eq(a, b)


def _fn_lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
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


def _identity(v: Any, *_: Any) -> Any:
    return v


@dataclass(frozen=True)
class Func:
    """A template function: ``nargs`` fixed arguments, plus any number if ``variadic``."""

    fn: Callable[..., Any]
    nargs: int
    variadic: bool = False
    # Go parameter types of the fixed arguments ("string", "int", "[]string", "any"); a
    # constant of the wrong type is reported as Go's evalArg does ("expected string; found 5").
    types: tuple[str, ...] = ()


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
    "and": Func(_identity, 1, True),  # evaluated lazily by the executor
    "or": Func(_identity, 1, True),
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


# --- lexer -----------------------------------------------------------------------------------


@dataclass
class _Tok:
    kind: str  # field var ident string number char dot pipe lparen rparen decl assign comma end
    val: str
    pos: int
    space_before: bool = False


_SPACE = " \t\r\n"
_KEYWORDS = {
    "if",
    "else",
    "end",
    "range",
    "with",
    "nil",
    "true",
    "false",
    "break",
    "continue",
    "define",
    "template",
    "block",
}


class _ParseError(Exception):
    pass


def _line_of(text: str, pos: int) -> int:
    return 1 + text.count("\n", 0, pos)


@dataclass
class _Action:
    tokens: list[_Tok]
    pos: int  # position of the first token (or of the delimiter)
    line: int


@dataclass
class _TextItem:
    text: str


def _lex(text: str) -> list[_TextItem | _Action]:
    items: list[_TextItem | _Action] = []
    pos = 0
    trim_next = False
    while True:
        i = text.find("{{", pos)
        chunk = text[pos:] if i == -1 else text[pos:i]
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
            trim_next = False
        if i == -1:
            if chunk:
                items.append(_TextItem(chunk))
            return items
        p = i + 2
        if text.startswith("-", p) and p + 1 < len(text) and text[p + 1] in _SPACE:
            chunk = chunk.rstrip(_SPACE)
            p += 2
        if chunk:
            items.append(_TextItem(chunk))
        # comment
        if text.startswith("/*", p):
            end = text.find("*/", p + 2)
            if end == -1:
                raise _ParseError(f"template: :{_line_of(text, i)}: unclosed comment")
            q = end + 2
            if text.startswith("}}", q):
                pos = q + 2
                continue
            if text.startswith(" -}}", q):
                pos = q + 4
                trim_next = True
                continue
            raise _ParseError(
                f"template: :{_line_of(text, i)}: comment ends before closing delimiter"
            )
        tokens, pos, trim_next = _lex_action(text, p, i)
        items.append(_Action(tokens, tokens[0].pos if tokens else p, _line_of(text, i)))


_NUM_RE = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
    r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?:i)?"
)


def _lex_action(text: str, p: int, start: int) -> tuple[list[_Tok], int, bool]:
    toks: list[_Tok] = []
    space = False
    paren = 0
    line = _line_of(text, start)
    while True:
        if p >= len(text):
            raise _ParseError(f"template: :{line}: unclosed action")
        c = text[p]
        if c in _SPACE:
            q = p
            while q < len(text) and text[q] in _SPACE:
                q += 1
            if text.startswith("-}}", q):
                return toks, q + 3, True
            p = q
            space = True
            continue
        if text.startswith("}}", p):
            if paren:
                raise _ParseError(f"template: :{line}: unclosed left paren")
            return toks, p + 2, False
        tok_start = p
        if c == "|":
            toks.append(_Tok("pipe", c, p, space))
            p += 1
        elif c == "(":
            paren += 1
            toks.append(_Tok("lparen", c, p, space))
            p += 1
        elif c == ")":
            paren -= 1
            if paren < 0:
                raise _ParseError(f"template: :{line}: unexpected right paren")
            toks.append(_Tok("rparen", c, p, space))
            p += 1
        elif c == ",":
            toks.append(_Tok("comma", c, p, space))
            p += 1
        elif text.startswith(":=", p):
            toks.append(_Tok("decl", ":=", p, space))
            p += 2
        elif c == "=":
            toks.append(_Tok("assign", "=", p, space))
            p += 1
        elif c == '"':
            q = p + 1
            while q < len(text) and text[q] != '"':
                if text[q] == "\\":
                    q += 1
                if q < len(text) and text[q] == "\n":
                    raise _ParseError(f"template: :{line}: unterminated quoted string")
                q += 1
            if q >= len(text):
                raise _ParseError(f"template: :{line}: unterminated quoted string")
            toks.append(_Tok("string", text[p : q + 1], p, space))
            p = q + 1
        elif c == "`":
            q = text.find("`", p + 1)
            if q == -1:
                raise _ParseError(f"template: :{line}: unterminated raw quoted string")
            toks.append(_Tok("rawstring", text[p : q + 1], p, space))
            p = q + 1
        elif c == "'":
            q = p + 1
            while q < len(text) and text[q] != "'":
                if text[q] == "\\":
                    q += 1
                q += 1
            if q >= len(text):
                raise _ParseError(f"template: :{line}: unterminated character constant")
            toks.append(_Tok("char", text[p : q + 1], p, space))
            p = q + 1
        elif c == "$":
            q = p + 1
            while q < len(text) and (text[q].isalnum() or text[q] == "_"):
                q += 1
            toks.append(_Tok("var", text[p:q], p, space))
            p = q
        elif c == "." and p + 1 < len(text) and (text[p + 1].isalpha() or text[p + 1] == "_"):
            q = p + 1
            while q < len(text) and (text[q].isalnum() or text[q] == "_"):
                q += 1
            toks.append(_Tok("field", text[p + 1 : q], p, space))
            p = q
        elif c.isdigit() or (c in "+-." and p + 1 < len(text) and text[p + 1].isdigit()):
            m = _NUM_RE.match(text, p)
            assert m is not None
            q = m.end()
            if q < len(text) and (text[q].isalnum() or text[q] == "."):
                raise _ParseError(f'template: :{line}: bad number syntax: "{text[p : q + 1]}"')
            toks.append(_Tok("number", text[p:q], p, space))
            p = q
        elif c == ".":
            toks.append(_Tok("dot", ".", p, space))
            p += 1
        elif c.isalpha() or c == "_":
            q = p
            while q < len(text) and (text[q].isalnum() or text[q] == "_"):
                q += 1
            word = text[p:q]
            kind = "keyword" if word in _KEYWORDS else "ident"
            toks.append(_Tok(kind, word, p, space))
            p = q
        else:
            raise _ParseError(
                f"template: :{line}: unrecognized character in action: U+{ord(c):04X} {c!r}"
            )
        space = False
        _ = tok_start


# --- parse tree ------------------------------------------------------------------------------


@dataclass
class Node:
    pos: int


@dataclass
class FieldNode(Node):
    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass
class VariableNode(Node):
    idents: list[str]  # first is "$name"

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class ConstNode(Node):
    value: Any
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class IdentifierNode(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class CommandNode(Node):
    args: list[Node]

    def __str__(self) -> str:
        parts = []
        for a in self.args:
            parts.append(f"({a})" if isinstance(a, PipeNode) else str(a))
        return " ".join(parts)


@dataclass
class PipeNode(Node):
    decl: list[str]
    is_assign: bool
    cmds: list[CommandNode]

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


@dataclass
class ChainNode(Node):
    node: Node
    fields: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return inner + "".join("." + f for f in self.fields)


@dataclass
class TextNode(Node):
    text: str


@dataclass
class ActionNode(Node):
    pipe: PipeNode


@dataclass
class BranchNode(Node):
    kind: str  # if, range, with
    pipe: PipeNode
    body: list[Node]
    else_body: list[Node] | None


@dataclass
class BreakNode(Node):
    pass


@dataclass
class ContinueNode(Node):
    pass


def _unquote(tok: _Tok) -> str:
    if tok.kind == "rawstring":
        return tok.val[1:-1].replace("\r", "")
    body = tok.val[1:-1]
    out: list[str] = []
    i = 0
    simple = {
        "a": "\a",
        "b": "\b",
        "f": "\f",
        "n": "\n",
        "r": "\r",
        "t": "\t",
        "v": "\v",
        "\\": "\\",
        '"': '"',
        "'": "'",
    }
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif e == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(body[i + 2 : i + 10], 16)))
            i += 10
        elif e in "01234567":
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise _ParseError(f"invalid syntax: {tok.val}")
    return "".join(out)


class _Parser:
    def __init__(self, text: str, funcs: dict[str, Func]):
        self.text = text
        self.funcs = funcs
        self.items = _lex(text)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    def err(self, msg: str, line: int) -> _ParseError:
        return _ParseError(f"template: :{line}: {msg}")

    def parse(self) -> list[Node]:
        nodes, stop = self.parse_list()
        if stop is not None:
            word, action = stop
            raise self.err(f"unexpected {{{{{word}}}}}", action.line)
        return nodes

    def parse_list(self) -> tuple[list[Node], tuple[str, _Action] | None]:
        """Parse nodes until {{end}} / {{else ...}}; return the list and the stopper."""
        nodes: list[Node] = []
        while self.i < len(self.items):
            item = self.items[self.i]
            self.i += 1
            if isinstance(item, _TextItem):
                nodes.append(TextNode(0, item.text))
                continue
            toks = item.tokens
            if not toks:
                raise self.err("missing value for command", item.line)
            first = toks[0]
            if first.kind == "keyword" and first.val in ("end", "else"):
                return nodes, (first.val, item)
            if first.kind == "keyword" and first.val in ("if", "range", "with"):
                nodes.append(self.parse_branch(first.val, item, toks[1:]))
                continue
            if first.kind == "keyword" and first.val in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.err(f"{{{{{first.val}}}}} outside {{{{range}}}}", item.line)
                if len(toks) > 1:
                    raise self.err(f"unexpected {toks[1].val!s} in {{{{{first.val}}}}}", item.line)
                nodes.append(
                    BreakNode(first.pos) if first.val == "break" else ContinueNode(first.pos)
                )
                continue
            if first.kind == "keyword" and first.val in ("define", "template", "block"):
                raise self.err(f"{{{{{first.val}}}}} is not supported in --format", item.line)
            pipe = self.parse_pipeline(toks, item.line, "command")
            nodes.append(ActionNode(item.pos, pipe))
        return nodes, None

    def parse_branch(self, kind: str, item: _Action, toks: list[_Tok]) -> BranchNode:
        mark = len(self.vars)
        pipe = self.parse_pipeline(toks, item.line, kind, allow_two=(kind == "range"))
        if kind == "range":
            self.range_depth += 1
        body, stop = self.parse_list()
        if kind == "range":
            self.range_depth -= 1
        if stop is None:
            raise self.err("unexpected EOF", _line_of(self.text, len(self.text)))
        else_body: list[Node] | None = None
        word, action = stop
        if word == "else":
            rest = action.tokens[1:]
            if (
                rest
                and rest[0].kind == "keyword"
                and rest[0].val in ("if", "with")
                and kind != "range"
            ):
                # {{else if ...}}: a nested branch sharing this one's {{end}}.
                else_body = [self.parse_branch(rest[0].val, action, rest[1:])]
            else:
                if rest:
                    raise self.err(f"unexpected {rest[0].val!r} in else", action.line)
                else_body, stop2 = self.parse_list()
                if stop2 is None:
                    raise self.err("unexpected EOF", _line_of(self.text, len(self.text)))
                if stop2[0] != "end":
                    raise self.err("expected end; found {{else}}", stop2[1].line)
                if len(stop2[1].tokens) > 1:
                    raise self.err("unexpected tokens in end", stop2[1].line)
        elif len(action.tokens) > 1:
            raise self.err(f"unexpected {action.tokens[1].val!r} in end", action.line)
        del self.vars[mark:]
        return BranchNode(item.pos, kind, pipe, body, else_body)

    def parse_pipeline(
        self, toks: list[_Tok], line: int, context: str, allow_two: bool = False
    ) -> PipeNode:
        decl: list[str] = []
        is_assign = False
        k = 0
        # declarations: $x := / $x = / $i, $v :=
        if len(toks) >= 2 and toks[0].kind == "var":
            if toks[1].kind in ("decl", "assign"):
                decl = [toks[0].val]
                is_assign = toks[1].kind == "assign"
                k = 2
            elif (
                allow_two
                and toks[1].kind == "comma"
                and len(toks) >= 4
                and toks[2].kind == "var"
                and toks[3].kind in ("decl", "assign")
            ):
                decl = [toks[0].val, toks[2].val]
                is_assign = toks[3].kind == "assign"
                k = 4
        if is_assign:
            for v in decl:
                if v not in self.vars:
                    raise self.err(f'undefined variable "{v}"', line)
        pipe, k = self._pipeline_body(toks, k, line, context, stop_at_rparen=False)
        if k != len(toks):
            raise self.err(f"unexpected {toks[k].val!r} in {context}", line)
        pipe.decl = decl
        pipe.is_assign = is_assign
        if not is_assign:
            self.vars.extend(decl)
        return pipe

    def _pipeline_body(
        self, toks: list[_Tok], k: int, line: int, context: str, stop_at_rparen: bool
    ) -> tuple[PipeNode, int]:
        pos = toks[k].pos if k < len(toks) else 0
        cmds: list[CommandNode] = []
        while True:
            args: list[Node] = []
            cpos = toks[k].pos if k < len(toks) else pos
            while k < len(toks) and toks[k].kind not in ("pipe", "rparen"):
                node, k = self._operand(toks, k, line)
                args.append(node)
            if not args:
                raise self.err(f"missing value for {context}", line)
            cmds.append(CommandNode(cpos, args))
            if k < len(toks) and toks[k].kind == "pipe":
                k += 1
                continue
            break
        if k < len(toks) and toks[k].kind == "rparen" and not stop_at_rparen:
            raise self.err("unexpected right paren", line)
        for c in cmds[1:]:
            if isinstance(c.args[0], (ConstNode, NilNode, DotNode)):
                raise self.err(
                    f"non executable command in pipeline stage {cmds.index(c) + 1}", line
                )
        return PipeNode(pos, [], False, cmds), k

    def _operand(self, toks: list[_Tok], k: int, line: int) -> tuple[Node, int]:
        t = toks[k]
        node: Node
        if t.kind == "field":
            idents = [t.val]
            pos = t.pos
            k += 1
            if k < len(toks) and toks[k].kind == "field" and not toks[k].space_before:
                pos = toks[k].pos  # Go positions a chained field at its second element
            while k < len(toks) and toks[k].kind == "field" and not toks[k].space_before:
                idents.append(toks[k].val)
                k += 1
            return FieldNode(pos, idents), k
        if t.kind == "var":
            if t.val not in self.vars:
                raise self.err(f'undefined variable "{t.val}"', line)
            idents = [t.val]
            pos = t.pos
            k += 1
            if k < len(toks) and toks[k].kind == "field" and not toks[k].space_before:
                pos = toks[k].pos
            while k < len(toks) and toks[k].kind == "field" and not toks[k].space_before:
                idents.append(toks[k].val)
                k += 1
            return VariableNode(pos, idents), k
        if t.kind == "lparen":
            pipe, k = self._pipeline_body(toks, k + 1, line, "parenthesized pipeline", True)
            if k >= len(toks) or toks[k].kind != "rparen":
                raise self.err("unclosed left paren", line)
            node = pipe
            pipe.pos = t.pos
            k += 1
        elif t.kind == "dot":
            node, k = DotNode(t.pos), k + 1
        elif t.kind == "ident":
            if t.val not in self.funcs:
                raise self.err(f'function "{t.val}" not defined', line)
            node, k = IdentifierNode(t.pos, t.val), k + 1
        elif t.kind == "keyword" and t.val == "nil":
            node, k = NilNode(t.pos), k + 1
        elif t.kind == "keyword" and t.val in ("true", "false"):
            node, k = ConstNode(t.pos, t.val == "true", t.val), k + 1
        elif t.kind in ("string", "rawstring"):
            node, k = ConstNode(t.pos, _unquote(t), t.val), k + 1
        elif t.kind == "char":
            s = _unquote(_Tok("string", '"' + t.val[1:-1] + '"', t.pos))
            node, k = ConstNode(t.pos, ord(s), t.val), k + 1
        elif t.kind == "number":
            node, k = ConstNode(t.pos, self._number(t, line), t.val), k + 1
        elif t.kind == "keyword":
            raise self.err(f"unexpected <{t.val}> in operand", line)
        else:
            raise self.err(f'unexpected "{t.val}" in operand', line)
        # (pipeline).Field, "x".Field ...: a chain
        fields: list[str] = []
        chain_pos = toks[k].pos if k < len(toks) else t.pos
        while k < len(toks) and toks[k].kind == "field" and not toks[k].space_before:
            fields.append(toks[k].val)
            k += 1
        if fields:
            if isinstance(node, (ConstNode, NilNode)) and not isinstance(node, PipeNode):
                raise self.err(f"unexpected . after term {str(node)!r}", line)
            node = ChainNode(chain_pos, node, fields)
        return node, k

    def _number(self, t: _Tok, line: int) -> int | float:
        s = t.val.replace("_", "")
        try:
            if s.endswith("i"):
                raise ValueError
            if re.fullmatch(r"[+-]?0[xXbBoO].*", s):
                return int(s, 0)
            if re.fullmatch(r"[+-]?\d+", s):
                return int(s, 10) if not re.fullmatch(r"[+-]?0\d+", s) else int(s, 8)
            return float(s)
        except ValueError:
            raise self.err(f'illegal number syntax: "{t.val}"', line) from None


# --- executor --------------------------------------------------------------------------------


class _ExecError(Exception):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class _State:
    text: str
    funcs: dict[str, Func]
    out: list[str]
    type_name: str
    missing: str  # "error" | "zero" | "no value"
    root: Any
    vars: list[tuple[str, Any]] = field(default_factory=list)
    node: Node | None = None

    def errorf(self, msg: str) -> _ExecError:
        if self.node is None:
            return _ExecError(f"template: : {msg}")
        pos = self.node.pos
        head = self.text[:pos]
        nl = head.rfind("\n")
        col = pos if nl == -1 else pos - (nl + 1)
        line = 1 + head.count("\n")
        ctx = str(self.node)
        if len(ctx) > 20:
            ctx = ctx[:20] + "..."
        return _ExecError(f'template: :{line}:{col}: executing "" at <{ctx}>: {msg}')

    # variables
    def push(self, name: str, value: Any) -> None:
        self.vars.append((name, value))

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.errorf(f"undefined variable: {name}")

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise self.errorf(f"undefined variable: {name}")

    # walking
    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            self.node = node
            if isinstance(node, TextNode):
                self.out.append(node.text)
            elif isinstance(node, ActionNode):
                val = self.eval_pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.node = node
                    self.out.append(go_sprint_value(val))
            elif isinstance(node, BranchNode):
                self.walk_branch(dot, node)
            elif isinstance(node, BreakNode):
                raise _Break
            elif isinstance(node, ContinueNode):
                raise _Continue

    def walk_branch(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.walk_range(dot, node)
                return
            val = self.eval_pipeline(dot, node.pipe)
            if truth(val):
                self.walk(val if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        pipe = node.pipe
        val = self.eval_pipeline_value(dot, pipe)
        items: list[tuple[Any, Any]]
        if isinstance(val, (list, tuple)):
            items = list(enumerate(val))
        elif isinstance(val, dict):
            items = [(k, val[k]) for k in sorted(val, key=_sort_key)]
        elif isinstance(val, int) and not isinstance(val, bool):
            items = [(i, i) for i in range(val)]
        elif val is None or val is NO_VALUE:
            items = []
        else:
            self.node = node
            raise self.errorf(f"range can't iterate over {go_sprint_value(val)}")
        mark = len(self.vars)
        for key, elem in items:
            if len(pipe.decl) == 1:
                self._decl(pipe, 0, elem)
            elif len(pipe.decl) == 2:
                self._decl(pipe, 0, key)
                self._decl(pipe, 1, elem)
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[mark:]
        if not items and node.else_body is not None:
            self.walk(dot, node.else_body)

    def _decl(self, pipe: PipeNode, i: int, value: Any) -> None:
        if pipe.is_assign:
            self.set_var(pipe.decl[i], value)
        else:
            self.push(pipe.decl[i], value)

    def eval_pipeline_value(self, dot: Any, pipe: PipeNode) -> Any:
        """Evaluate a range pipeline without declaring its variables (range does that)."""
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        return value

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.node = pipe
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.push(name, value)
        return value

    def _not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        self.node = first
        if isinstance(first, FieldNode):
            return self.eval_field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self._not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.node = cmd
        if isinstance(first, NilNode):
            raise self.errorf("nil is not a command")
        self._not_a_function(cmd.args, final)
        if isinstance(first, DotNode):
            return dot
        assert isinstance(first, ConstNode)
        return first.value

    def eval_arg(self, dot: Any, node: Node) -> Any:
        self.node = node
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, FieldNode):
            return self.eval_field_chain(dot, dot, node, node.idents, [node], _MISSING)
        if isinstance(node, VariableNode):
            return self.eval_variable(dot, node, [node], _MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, node, [node], _MISSING)
        if isinstance(node, ChainNode):
            return self.eval_chain(dot, node, [node], _MISSING)
        assert isinstance(node, ConstNode)
        return node.value

    def _check_const(self, node: ConstNode, typ: str) -> None:
        if _const_fits(node.value, typ):
            return
        self.node = node
        if typ == "string":
            raise self.errorf(f"expected string; found {node}")
        if typ == "int":
            raise self.errorf(f"expected integer; found {node}")
        raise self.errorf(f"can't handle {node} for arg of type {typ}")

    def eval_chain(self, dot: Any, chain: ChainNode, args: list[Node], final: Any) -> Any:
        if isinstance(chain.node, NilNode):
            raise self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, chain.node)
        self.node = chain
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable(self, dot: Any, node: VariableNode, args: list[Node], final: Any) -> Any:
        value = self.var(node.idents[0])
        if len(node.idents) == 1:
            self._not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, node, node.idents[1:], args, final)

    def eval_field_chain(
        self, dot: Any, receiver: Any, node: Node, idents: list[str], args: list[Node], final: Any
    ) -> Any:
        n = len(idents)
        for i in range(n - 1):
            receiver = self.eval_field(dot, idents[i], node, [node], _MISSING, receiver)
        return self.eval_field(dot, idents[n - 1], node, args, final, receiver)

    def eval_field(
        self, dot: Any, name: str, node: Node, args: list[Node], final: Any, receiver: Any
    ) -> Any:
        self.node = node
        has_args = len(args) > 1 or final is not _MISSING
        if receiver is NO_VALUE or receiver is _MISSING:
            return NO_VALUE
        if receiver is None:
            raise self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if name in receiver:
                value = receiver[name]
                if isinstance(value, Func):
                    return self.call_method(dot, name, value, node, args, final)
                if has_args and receiver is self.root and self.missing == "error":
                    # docker's row contexts are structs whose fields are methods of no
                    # arguments
                    argn = len(args) - 1 + (0 if final is _MISSING else 1)
                    raise self.errorf(f"wrong number of args for {name}: want 0 got {argn}")
                if has_args:
                    raise self.errorf(f"{name} is not a method but has arguments")
                return value
            if receiver is self.root and self.missing == "error":
                raise self.errorf(f"can't evaluate field {name} in type {self.type_name}")
            if has_args:
                raise self.errorf(f"{name} is not a method but has arguments")
            if receiver is self.root and self.missing == "zero":
                return ""
            return NO_VALUE
        raise self.errorf(f"can't evaluate field {name} in type {go_type(receiver)}")

    def _check_arity(self, name: str, fn: Func, node: Node, args: list[Node], final: Any):
        """Go's "wrong number of args for NAME: want N got M", at ``node``."""
        argn = len(args) - 1 + (0 if final is _MISSING else 1)
        if (fn.variadic and argn < fn.nargs) or (not fn.variadic and argn != fn.nargs):
            self.node = node
            want = f"at least {fn.nargs}" if fn.variadic else str(fn.nargs)
            raise self.errorf(f"wrong number of args for {name}: want {want} got {argn}")

    def eval_call_args(self, dot: Any, fn: Func, args: list[Node], final: Any) -> list[Any]:
        """The arguments of a call, each checked against its Go type as evalArg does: a
        constant by its kind, a computed value where it was computed (at its last node)."""
        values = []
        for i, a in enumerate(args[1:]):
            typ = fn.types[i] if i < len(fn.types) else "any"
            if isinstance(a, ConstNode) and typ != "any":
                self._check_const(a, typ)
            value = self.eval_arg(dot, a)
            if typ in _WANT:
                try:
                    _WANT[typ](value)
                except _TypeError as e:
                    raise self.errorf(str(e)) from None
            values.append(value)
        if final is not _MISSING:
            values.append(final)
        return values

    def call_method(
        self, dot: Any, name: str, method: Func, node: Node, args: list[Node], final: Any
    ) -> Any:
        """A method of the data (``.Label "key"``): Go's evalCall for a reflect method."""
        self.node = node
        self._check_arity(name, method, node, args, final)
        values = self.eval_call_args(dot, method, args, final)
        try:
            return method.fn(*values)
        except _TypeError as e:
            raise self.errorf(str(e)) from None
        except _CallError as e:
            self.node = node
            raise self.errorf(f"error calling {name}: {e}") from None

    def eval_function(
        self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node], final: Any
    ) -> Any:
        name = node.name
        fn = self.funcs.get(name)
        if fn is None:
            raise self.errorf(f'"{name}" is not a defined function')
        self._check_arity(name, fn, node, args, final)
        if name in ("and", "or") and fn.fn is _identity:
            value: Any = None
            for i, a in enumerate(args[1:] + ([] if final is _MISSING else [None])):
                if final is not _MISSING and i == len(args) - 1:
                    value = final
                else:
                    value = self.eval_arg(dot, a)
                if truth(value) == (name == "or"):
                    return value
            return value
        values = self.eval_call_args(dot, fn, args, final)
        # Go leaves the position at the last node evaluated unless the call fails.
        try:
            return fn.fn(*values)
        except _TypeError as e:
            raise self.errorf(str(e)) from None
        except (_CallError, FormatError) as e:
            self.node = cmd
            raise self.errorf(f"error calling {name}: {e}") from None


def _const_fits(value: Any, typ: str) -> bool:
    if typ == "string":
        return isinstance(value, str)
    if typ == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "[]string":
        return False
    return True


class Template:
    """A parsed Go template; :meth:`execute` renders it against JSON-like data."""

    def __init__(self, text: str, funcs: dict[str, Func] | None = None):
        """Parse ``text``. ``funcs`` are added to Go's builtins and docker's functions.

        Raises :class:`FormatError` with Go's message (``template: :1: function "foo" not
        defined``) when the text does not parse.
        """
        self.text = text
        self.funcs: dict[str, Func] = {**BUILTIN_FUNCS, **DOCKER_FUNCS, **(funcs or {})}
        try:
            self.nodes = _Parser(text, self.funcs).parse()
        except _ParseError as e:
            raise FormatError(str(e)) from None

    def execute(
        self,
        data: Any,
        *,
        funcs: dict[str, Func] | None = None,
        type_name: str = "map[string]interface {}",
        missing: str = "error",
        partial: list[str] | None = None,
    ) -> str:
        """Render against ``data``.

        ``missing`` says what a key absent from ``data`` itself gives: ``"error"`` (a struct
        field that does not exist), ``"zero"`` (``""``, a ``map[string]string``) or
        ``"no value"`` (a ``map[string]interface{}``). ``type_name`` names the type in the
        error. If ``partial`` is given, whatever was rendered before an error is left in it.
        """
        out = partial if partial is not None else []
        all_funcs = {**self.funcs, **(funcs or {})}
        state = _State(self.text, all_funcs, out, type_name, missing, data)
        state.push("$", data)
        try:
            state.walk(data, self.nodes)
        except _ExecError as e:
            raise FormatError(str(e)) from None
        return "".join(out)


def render(text: str, data: Any, **kwargs: Any) -> str:
    """Parse and execute in one call."""
    return Template(text).execute(data, **kwargs)


# --- tabwriter -------------------------------------------------------------------------------

FILTER_HTML = 1 << 0  # not supported
STRIP_ESCAPE = 1 << 1  # not supported
ALIGN_RIGHT = 1 << 2
DISCARD_EMPTY_COLUMNS = 1 << 3
TAB_INDENT = 1 << 4
DEBUG = 1 << 5


def display_width(s: str) -> int:
    """Terminal columns of ``s`` (go-runewidth): wide East Asian characters count 2."""
    w = 0
    for ch in s:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def truncate_display(s: str, max_width: int) -> str:
    """docker/cli's formatter.Ellipsis: cut to ``max_width`` terminal cells, ending in "…"."""
    if display_width(s) <= max_width:
        return s
    out, width = "", 0
    for ch in s:
        w = display_width(ch)
        if width + w > max_width - 1:
            break
        out += ch
        width += w
    return out + "…"


@dataclass
class _Cell:
    text: str = ""
    width: int = 0
    htab: bool = False


class TabWriter:
    """Go's ``text/tabwriter.Writer`` on text: :meth:`write` buffers, :meth:`flush` aligns.

    Output is collected; :meth:`flush` returns everything produced since the last call.
    docker/cli tables use ``TabWriter(10, 1, 3, " ", 0)`` (:func:`docker_table_writer`).
    """

    def __init__(
        self, minwidth: int, tabwidth: int, padding: int, padchar: str = " ", flags: int = 0
    ):
        if minwidth < 0 or tabwidth < 0 or padding < 0:
            raise ValueError("negative minwidth, tabwidth, or padding")
        if flags & (FILTER_HTML | STRIP_ESCAPE):
            raise ValueError("FilterHTML and StripEscape are not supported")
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar
        if padchar == "\t":
            flags &= ~ALIGN_RIGHT  # tab padding enforces left alignment
        self.flags = flags
        self._out: list[str] = []
        self._reset()

    def _reset(self) -> None:
        self._cell: list[str] = []
        self._lines: list[list[_Cell]] = [[]]
        self._widths: list[int] = []

    def _terminate_cell(self, htab: bool) -> int:
        text = "".join(self._cell)
        self._lines[-1].append(_Cell(text, display_width(text), htab))
        self._cell = []
        return len(self._lines[-1])

    def write(self, text: str) -> None:
        """Add text; cells end at ``\\t`` and ``\\v``, lines at ``\\n`` and ``\\f``."""
        start = 0
        for i, ch in enumerate(text):
            if ch in "\t\v\n\f":
                self._cell.append(text[start:i])
                start = i + 1
                ncells = self._terminate_cell(ch == "\t")
                if ch in "\n\f":
                    self._lines.append([])
                    if ch == "\f" or ncells == 1:
                        # A one-cell line cannot affect later columns: flush what we have.
                        self._flush_internal()
                        if ch == "\f" and self.flags & DEBUG:
                            self._out.append("---\n")
        self._cell.append(text[start:])

    def flush(self) -> str:
        """Format everything buffered and return the output written since the last flush."""
        self._flush_internal()
        out = "".join(self._out)
        self._out = []
        return out

    def _flush_internal(self) -> None:
        if any(self._cell):
            self._terminate_cell(False)
        self._format(0, len(self._lines))
        self._reset()

    def _write_padding(self, textw: int, cellw: int, use_tabs: bool) -> None:
        if self.padchar == "\t" or use_tabs:
            if self.tabwidth == 0:
                return
            cellw = (cellw + self.tabwidth - 1) // self.tabwidth * self.tabwidth
            n = cellw - textw
            self._out.append("\t" * ((n + self.tabwidth - 1) // self.tabwidth))
            return
        self._out.append(self.padchar * (cellw - textw))

    def _write_lines(self, line0: int, line1: int) -> None:
        for i in range(line0, line1):
            line = self._lines[i]
            use_tabs = bool(self.flags & TAB_INDENT)
            for j, c in enumerate(line):
                if j > 0 and self.flags & DEBUG:
                    self._out.append("|")
                if not c.text:
                    if j < len(self._widths):
                        self._write_padding(c.width, self._widths[j], use_tabs)
                else:
                    use_tabs = False
                    if not self.flags & ALIGN_RIGHT:
                        self._out.append(c.text)
                        if j < len(self._widths):
                            self._write_padding(c.width, self._widths[j], False)
                    else:
                        if j < len(self._widths):
                            self._write_padding(c.width, self._widths[j], False)
                        self._out.append(c.text)
            if i + 1 == len(self._lines):
                # last buffered line: no newline; its incomplete cell, if any, is empty here
                self._out.append("".join(self._cell))
            else:
                self._out.append("\n")

    def _format(self, line0: int, line1: int) -> None:
        column = len(self._widths)
        this = line0
        while this < line1:
            line = self._lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            # a cell in this column: this line starts a column block
            self._write_lines(line0, this)
            line0 = this
            width = self.minwidth
            discardable = True
            while this < line1:
                line = self._lines[this]
                if column >= len(line) - 1:
                    break
                c = line[column]
                width = max(width, c.width + self.padding)
                if c.width > 0 or c.htab:
                    discardable = False
                this += 1
            if discardable and self.flags & DISCARD_EMPTY_COLUMNS:
                width = 0
            self._widths.append(width)
            self._format(line0, this)
            self._widths.pop()
            line0 = this
            this += 1  # the line that ended the block has no cell in this column
        self._write_lines(line0, line1)


def docker_table_writer() -> TabWriter:
    """The writer docker/cli tables go through: ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``."""
    return TabWriter(10, 1, 3, " ", 0)


def tabulate(text: str, writer: TabWriter | None = None) -> str:
    """Align tab-terminated cells of ``text`` as a docker table does."""
    w = writer or docker_table_writer()
    w.write(text)
    return w.flush()


# --- docker/cli formatter.Context ------------------------------------------------------------

TABLE_FORMAT_KEY = "table"
JSON_FORMAT_KEY = "json"
JSON_FORMAT = "{{json .}}"


def is_table(fmt: str) -> bool:
    return fmt.startswith(TABLE_FORMAT_KEY)


def pre_format(fmt: str) -> str:
    """docker/cli ``Context.preFormat``: strip ``table``, map ``json``, trim, unescape."""
    final = fmt
    if is_table(fmt):
        final = final[len(TABLE_FORMAT_KEY) :]
    elif fmt == JSON_FORMAT_KEY:
        final = JSON_FORMAT
    final = final.strip(" ")
    return final.replace("\\t", "\t").replace("\\n", "\n")


def format_rows(
    rows: list[dict[str, Any]],
    fmt: str,
    headers: dict[str, str],
    *,
    type_name: str = "map[string]interface {}",
    funcs: dict[str, Func] | None = None,
) -> str:
    """Render ``rows`` with a ``--format`` value, as docker/cli's ``Context.Write`` does.

    * ``table ...``: the template after ``table`` is rendered once with ``headers`` as data
      (docker's header functions keep header text as is; a field absent from ``headers``
      prints ``<no value>``, as Docker 20.10 does), then once per row, and everything goes
      through :func:`docker_table_writer`.
      The header is printed even when there are no rows.
    * ``json``: one ``{{json .}}`` object per line.
    * anything else: the template rendered per row, each followed by a newline.

    Literal ``\\t`` and ``\\n`` in ``fmt`` become a tab and a newline; spaces around it are
    trimmed. The result ends with a newline unless it is empty. Raises :class:`FormatError`
    ("template parsing error: ...") for a template that does not parse or does not execute.
    ``type_name`` is the type named by "can't evaluate field X in type T" errors.
    """
    final = pre_format(fmt)
    try:
        tmpl = Template(final, funcs)
    except FormatError as e:
        raise FormatError(f"template parsing error: {e}") from None
    body: list[str] = []
    for row in rows:
        try:
            body.append(tmpl.execute(row, type_name=type_name))
        except FormatError as e:
            raise FormatError(f"template parsing error: {e}") from None
        body.append("\n")
    if not is_table(fmt):
        return "".join(body)
    header: list[str] = []
    # docker/cli's SubHeaderContext.Label: a label's header is its key's last dotted part,
    # with "-" and "_" as spaces.
    headers = {"Label": HEADER_LABEL, **headers}
    try:
        tmpl.execute(headers, funcs=HEADER_FUNCS, missing="no value", partial=header)
    except FormatError:
        pass  # docker ignores header errors and prints what was rendered
    writer = docker_table_writer()
    writer.write("".join(header))
    writer.write("\n")
    writer.write("".join(body))
    return writer.flush()


def iter_lines(text: str) -> Iterator[str]:
    """The lines of formatted output, without their newlines."""
    yield from text.splitlines()
