"""argparse as docker 20.10's cobra and pflag: their usage errors and exit statuses, Go's
``--flag=false`` spelling of booleans, the subcommand of a command line."""

from __future__ import annotations

import argparse
import sys


class _SubParsers(argparse._SubParsersAction):
    """Subcommands that know their one-line help (cobra's Short, for usage errors)."""

    def add_parser(self, name, **kwargs):
        short = kwargs.get("help") or ""
        parser = super().add_parser(name, **kwargs)
        parser.short = short
        return parser


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors the way docker 20.10 (cobra) does: a wrong number
    of arguments with status 1 ("\"docker stop\" requires at least 1 argument.", the hint,
    the usage line and the command's help), a bad flag with status 125."""

    short = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubParsers)

    def error(self, message: str):  # noqa: D401
        if message.startswith("the following arguments are required"):
            self.arguments_error()
        sys.stderr.write(f"{message}\nSee '{self.prog} --help'.\n")
        sys.exit(125)

    def _arguments(self) -> list[argparse.Action]:
        return [
            a for a in self._actions
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
        ]

    def use_line(self) -> str:
        """cobra's UseLine: the command, [OPTIONS] if it has any, its arguments."""
        words = [self.prog]
        if any(a.option_strings and a.dest != "help" for a in self._actions):
            words.append("[OPTIONS]")
        for a in self._arguments():
            m = a.metavar or a.dest.upper()
            words.append(
                {None: m, "+": f"{m} [{m}...]", "*": f"[{m}...]", "?": f"[{m}]"}.get(a.nargs, m)
            )
        return " ".join(words)

    def arguments_error(self) -> None:
        """cobra's RequiresMinArgs, ExactArgs, RequiresRangeArgs or NoArgs; exits 1."""
        least = sum(1 for a in self._arguments() if a.nargs in (None, "+"))
        most: int | None = sum(1 for a in self._arguments() if a.nargs in (None, "?"))
        if any(a.nargs in ("+", "*", argparse.REMAINDER) for a in self._arguments()):
            most = None

        def n(count: int) -> str:
            return f"{count} argument" + ("" if count == 1 else "s")

        if most == 0:
            what = "accepts no arguments"
        elif most == least:
            what = f"requires exactly {n(least)}"
        elif most is None:
            what = f"requires at least {n(least)}"
        elif least == 0:
            what = f"requires at most {n(most)}"
        else:
            what = f"requires at least {least} and at most {n(most)}"
        text = f"\"{self.prog}\" {what}.\nSee '{self.prog} --help'.\n\nUsage:  {self.use_line()}"
        if self.short:
            text += f"\n\n{self.short}"
        sys.stderr.write(text + "\n")
        sys.exit(1)

    def unknown_flag(self, word: str, words: list[str] = ()) -> None:
        """pflag's words for a flag the command does not have; exits 125. ``words``, the
        command line, gives the cluster an unknown letter came in (``-az``)."""
        if word.startswith("--"):
            what = f"unknown flag: {word.split('=', 1)[0]}"
        else:
            letter = word[1:2]
            cluster = next(
                (w for w in words if w[:1] == "-" and w[1:2] not in ("-", "") and letter in w),
                word,
            )
            what = f"unknown shorthand flag: '{letter}' in {cluster}"
        sys.stderr.write(f"{what}\nSee '{self.prog} --help'.\n")
        sys.exit(125)


def parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """parse_args, with the leftovers reported by the subcommand they were given to."""
    args, extra = parser.parse_known_args(words)
    if not extra:
        return args
    sub = parser
    while True:
        action = next(
            (a for a in sub._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        chosen = getattr(args, action.dest, None) if action is not None else None
        if chosen is None or chosen not in action.choices:
            break
        sub = action.choices[chosen]
    first = next((w for w in extra if w.startswith("-") and w != "-"), None)
    if first is not None and isinstance(sub, Parser):
        sub.unknown_flag(first, words)
    if isinstance(sub, Parser):
        sub.arguments_error()
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
    raise AssertionError("unreachable")


def go_bool_flags(argv: list[str]) -> list[str]:
    """Accept Go's ``--flag=false`` spelling of boolean flags, as docker's pflag does."""
    out = []
    for tok in argv:
        name, eq, value = tok.partition("=")
        if eq and name.startswith("-") and value.lower() in ("true", "false", "1", "0", "t", "f"):
            truthy = value.lower() in ("true", "1", "t")
            if name in ("-H", "--human"):
                out.append("--human" if truthy else "--no-human")
                continue
            if name == "--sig-proxy":
                out.append("--sig-proxy" if truthy else "--no-sig-proxy")
                continue
            if name in _BOOL_FLAGS:
                if truthy:
                    out.append(name)
                continue
        out.append(tok)
    return out


_BOOL_FLAGS = {
    "-a", "--all", "--all-tags", "--digests", "--no-trunc", "-q", "--quiet", "--force",
    "--no-prune", "--disable-content-trust",
}


def command_of(words: list[str]) -> str | None:
    """The subcommand of a command line: its first word after the ``--root`` option."""
    i = 0
    while i < len(words) and (words[i] == "--root" or words[i].startswith("--root=")):
        i += 2 if words[i] == "--root" else 1
    return words[i] if i < len(words) else None
