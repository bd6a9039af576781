"""Go's ``text/template`` as docker/cli's ``--format`` uses it: :class:`Template` parses a
template (template_parse.py) and executes it against JSON-like data.

Data are Python dicts, lists, str, int, float, bool and None (JSON's types). A dict is
looked up by key; a missing key on the data passed to :meth:`Template.execute` is an error
like a missing struct field in Go ("can't evaluate field Foo in type ..."), while a missing
key in a nested dict gives Go's map zero value, printed ``<no value>``. A dict value that is
a :class:`~dockweb.docker.gofmt.Func` is a method: it gets the action's arguments
(``{{.Label "com.example"}}``), checked in number and constant type as Go checks them, and
``json`` leaves it out. Values print as gofmt.py prints them.

Errors are :class:`~dockweb.docker.gofmt.FormatError`; ``str()`` is what docker prints, e.g.
``template: :1:2: executing "" at <.Foo>: can't evaluate field Foo in type ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockweb.docker.gofmt import (
    MISSING,
    NO_VALUE,
    FormatError,
    Func,
    go_sprint_value,
    go_type,
    sort_key,
    truth,
)
from dockweb.docker.template_funcs import (
    BUILTIN_FUNCS,
    DOCKER_FUNCS,
    WANT,
    ArgTypeError,
    CallError,
    identity,
)
from dockweb.docker.template_parse import (
    ActionNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ConstNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    NilNode,
    Node,
    ParseError,
    Parser,
    PipeNode,
    TextNode,
    VariableNode,
)

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
            items = [(k, val[k]) for k in sorted(val, key=sort_key)]
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
        value: Any = MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        return value

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.node = pipe
        value: Any = MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.push(name, value)
        return value

    def _not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not MISSING:
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
            return self.eval_field_chain(dot, dot, node, node.idents, [node], MISSING)
        if isinstance(node, VariableNode):
            return self.eval_variable(dot, node, [node], MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, node, [node], MISSING)
        if isinstance(node, ChainNode):
            return self.eval_chain(dot, node, [node], MISSING)
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
            receiver = self.eval_field(dot, idents[i], node, [node], MISSING, receiver)
        return self.eval_field(dot, idents[n - 1], node, args, final, receiver)

    def eval_field(
        self, dot: Any, name: str, node: Node, args: list[Node], final: Any, receiver: Any
    ) -> Any:
        self.node = node
        has_args = len(args) > 1 or final is not MISSING
        if receiver is NO_VALUE or receiver is MISSING:
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
                    argn = len(args) - 1 + (0 if final is MISSING else 1)
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
        argn = len(args) - 1 + (0 if final is MISSING else 1)
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
            if typ in WANT:
                try:
                    WANT[typ](value)
                except ArgTypeError as e:
                    raise self.errorf(str(e)) from None
            values.append(value)
        if final is not MISSING:
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
        except ArgTypeError as e:
            raise self.errorf(str(e)) from None
        except CallError as e:
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
        if name in ("and", "or") and fn.fn is identity:
            value: Any = None
            for i, a in enumerate(args[1:] + ([] if final is MISSING else [None])):
                if final is not MISSING and i == len(args) - 1:
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
        except ArgTypeError as e:
            raise self.errorf(str(e)) from None
        except (CallError, FormatError) as e:
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
            self.nodes = Parser(text, self.funcs).parse()
        except ParseError as e:
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
