"""Go's ``text/template`` lexer and parser, for the subset people put in ``--format``:
``{{.Field}}``, ``.A.B``, ``$`` and ``$var`` (``:=``, ``=``), pipelines, ``(...)`` groups,
``if``/``else if``/``else``, ``range`` (with ``$i, $v :=``, ``break``, ``continue``),
``with``, ``{{- trim -}}`` markers and ``{{/* comments */}}``. Errors are Go's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dockweb.docker.gofmt import Func

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


class ParseError(Exception):
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
                raise ParseError(f"template: :{_line_of(text, i)}: unclosed comment")
            q = end + 2
            if text.startswith("}}", q):
                pos = q + 2
                continue
            if text.startswith(" -}}", q):
                pos = q + 4
                trim_next = True
                continue
            raise ParseError(
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
            raise ParseError(f"template: :{line}: unclosed action")
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
                raise ParseError(f"template: :{line}: unclosed left paren")
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
                raise ParseError(f"template: :{line}: unexpected right paren")
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
                    raise ParseError(f"template: :{line}: unterminated quoted string")
                q += 1
            if q >= len(text):
                raise ParseError(f"template: :{line}: unterminated quoted string")
            toks.append(_Tok("string", text[p : q + 1], p, space))
            p = q + 1
        elif c == "`":
            q = text.find("`", p + 1)
            if q == -1:
                raise ParseError(f"template: :{line}: unterminated raw quoted string")
            toks.append(_Tok("rawstring", text[p : q + 1], p, space))
            p = q + 1
        elif c == "'":
            q = p + 1
            while q < len(text) and text[q] != "'":
                if text[q] == "\\":
                    q += 1
                q += 1
            if q >= len(text):
                raise ParseError(f"template: :{line}: unterminated character constant")
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
                raise ParseError(f'template: :{line}: bad number syntax: "{text[p : q + 1]}"')
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
            raise ParseError(
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
            raise ParseError(f"invalid syntax: {tok.val}")
    return "".join(out)


class Parser:
    def __init__(self, text: str, funcs: dict[str, Func]):
        self.text = text
        self.funcs = funcs
        self.items = _lex(text)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    def err(self, msg: str, line: int) -> ParseError:
        return ParseError(f"template: :{line}: {msg}")

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
