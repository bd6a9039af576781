"""Go's printing of template values, as docker/cli's ``--format`` shows them: ``fmt``'s ``%v``
(``[a b]``, ``map[k:v]`` with sorted keys, ``<nil>``, floats as ``%g``), ``encoding/json``
and ``fmt.Sprintf``. Values are JSON's Python types; :data:`NO_VALUE` is a missing map key.

Errors of the whole ``--format`` engine are :class:`FormatError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
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
MISSING = object()  # no piped value (Go's missingVal)


@dataclass(frozen=True)
class Func:
    """A template function: ``nargs`` fixed arguments, plus any number if ``variadic``."""

    fn: Callable[..., Any]
    nargs: int
    variadic: bool = False
    # Go parameter types of the fixed arguments ("string", "int", "[]string", "any"); a
    # constant of the wrong type is reported as Go's evalArg does ("expected string; found 5").
    types: tuple[str, ...] = ()


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
        items = sorted(v.items(), key=lambda kv: sort_key(kv[0]))
        return (
            "map[" + " ".join(f"{go_sprint_value(k)}:{go_sprint_value(x)}" for k, x in items) + "]"
        )
    return str(v)


def sort_key(k: Any) -> tuple[int, Any]:
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
