"""Dockerfiles as Docker 20.10's classic builder reads them: instructions (with their
lines, the ``escape`` directive, continuation lines and heredoc-free JSON or shell forms),
and moby's ShellLex for words and variables. Pure text: nothing here touches a store."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field

from dockweb.runtime.errors import BuildError, DockwebError

# instructions the classic builder knows; anything else is "unknown instruction"
INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
# build args every Dockerfile may use without declaring them (moby's builtinAllowedBuildArgs)
BUILTIN_ARGS = {
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
}  # fmt: skip


# -- Dockerfile parsing ---------------------------------------------------------------------


@dataclass
class Instruction:
    """One instruction: ``name`` upper case, ``rest`` the text after it (flags removed),
    ``flags`` its ``--name=value`` flags, ``line`` where it starts (1-based), ``original``
    its source text as one line."""

    name: str
    rest: str
    line: int
    original: str
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None  # the JSON array form, when it is one


def parse_error(line: int, message: str) -> BuildError:
    return BuildError(f"dockerfile parse error line {line}: {message}", line=line)


def parse_dockerfile(text: str) -> tuple[list[Instruction], str]:
    """Split a Dockerfile into instructions as moby's parser does: parser directives
    (``# escape=``), comment lines, line continuations, JSON array forms and leading
    ``--flags``. Returns (instructions, escape token). Raises BuildError with the line."""
    lines = text.splitlines()
    escape = "\\"
    i = 0
    # parser directives: only at the very top, before any other line
    while i < len(lines):
        m = re.match(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise parse_error(i + 1, f"invalid ESCAPE '{m.group(2)}'. Must be ` or \\")
            escape = m.group(2)
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i + 1
        parts = []
        text_line = raw.lstrip()
        while True:
            body = text_line.rstrip()
            if body.endswith(escape) and not body.endswith(escape * 2):
                parts.append(body[:-1])
                i += 1
                # comment and empty lines inside a continuation are dropped (moby's parser)
                while i < len(lines) and (
                    not lines[i].strip() or lines[i].lstrip().startswith("#")
                ):
                    i += 1
                if i >= len(lines):
                    break
                text_line = lines[i]
                continue
            parts.append(text_line.rstrip() if text_line is not raw else body)
            i += 1
            break
        logical = "".join(parts).strip()
        out.append(parse_instruction(logical, start))
    return out, escape


def parse_instruction(logical: str, line: int) -> Instruction:
    word, _, rest = logical.partition(" ")
    if "\t" in word:
        word, _, tail = word.partition("\t")
        rest = tail + " " + rest
    name = word.upper()
    if name not in INSTRUCTIONS:
        raise parse_error(line, f"unknown instruction: {name}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, remainder = rest.partition(" ")
        if token == "--":
            rest = remainder.strip()
            break
        key, eq, value = token[2:].partition("=")
        if not eq:
            raise parse_error(line, f"Flag --{key} is missing a value")
        flags[key] = value
        rest = remainder.strip()
    allowed = {"COPY": {"chown", "from"}, "ADD": {"chown"}, "FROM": {"platform"}}
    for key in flags:
        if key not in allowed.get(name, set()) and not (name == "HEALTHCHECK"):
            raise parse_error(line, f"Unknown flag: {key}")
    json_args = None
    if rest.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                json_args = value
    return Instruction(name, rest, line, logical, flags, json_args)


# -- shell words and variables (moby's ShellLex) -----------------------------------------


def expand_word(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """moby's ``ProcessWord``: ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``
    expanded from ``env``; quotes removed; the escape character escapes the next one."""
    out = []
    i = 0
    n = len(word)

    def variable(j: int) -> tuple[str, int]:
        if j < n and word[j] == "{":
            end = word.find("}", j)
            if end < 0:
                raise DockwebError(f"missing '}}' in '{word}'")
            inner = word[j + 1 : end]
            m = re.match(r"^([A-Za-z0-9_]+)(?:(:?[-+])(.*))?$", inner, re.S)
            if not m:
                raise DockwebError(f'failed to process "{word}": bad substitution')
            name, op, arg = m.groups()
            value = env.get(name)
            if op in (":-", "-"):
                unset = value is None or (op == ":-" and value == "")
                return (expand_word(arg, env, escape) if unset else value), end + 1
            if op in (":+", "+"):
                isset = value is not None and (op == "+" or value != "")
                return (expand_word(arg, env, escape) if isset else ""), end + 1
            return value or "", end + 1
        m = re.match(r"[A-Za-z0-9_]+", word[j:])
        if not m:
            return "$", j
        return env.get(m.group(0), ""), j + m.end()

    while i < n:
        ch = word[i]
        if ch == escape:
            if i + 1 < n:
                out.append(word[i + 1])
            i += 2
        elif ch == "'":
            end = word.find("'", i + 1)
            if end < 0:
                raise DockwebError("unexpected end of statement while looking for matching '")
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and word[i] != '"':
                if word[i] == escape and i + 1 < n and word[i + 1] in ('"', "$", escape):
                    out.append(word[i + 1])
                    i += 2
                elif word[i] == "$":
                    value, i = variable(i + 1)
                    out.append(value)
                else:
                    out.append(word[i])
                    i += 1
            if i >= n:
                raise DockwebError('unexpected end of statement while looking for matching "')
            i += 1
        elif ch == "$":
            value, i = variable(i + 1)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_words(text: str, escape: str = "\\") -> list[str]:
    """moby's ``parseWords``: split at whitespace outside quotes, keeping quotes and escapes."""
    words, cur, quote, i = [], [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            cur.append(text[i : i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def name_values(inst: Instruction, escape: str) -> list[tuple[str, str]]:
    """ENV and LABEL arguments: ``k=v k2=v2`` or the old ``k value with spaces``."""
    words = split_words(inst.rest, escape)
    if not words:
        raise parse_error(inst.line, f"{inst.name} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = inst.rest.partition(" ")
        if not value.strip():
            raise parse_error(inst.line, f"{inst.name} must have two arguments")
        return [(key, value.strip())]
    pairs = []
    for w in words:
        if "=" not in w:
            # moby's parser rejects this before the instructions: no line in the message
            raise BuildError(
                f'failed to parse Dockerfile: Syntax error - can\'t find = in "{w}". '
                "Must be of the form: name=value",
                line=inst.line,
            )
        k, _, v = w.partition("=")
        if not k:
            raise parse_error(inst.line, f"{inst.name} names can not be blank")
        pairs.append((k, v))
    return pairs
