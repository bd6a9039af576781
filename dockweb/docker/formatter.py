"""docker/cli's ``formatter.Context``: ``--format`` as the listings take it (``table ...``,
``json`` or a template), rendered over rows with a header for tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dockweb.docker.gofmt import FormatError, Func
from dockweb.docker.tabwriter import docker_table_writer
from dockweb.docker.template import Template
from dockweb.docker.template_funcs import HEADER_FUNCS, HEADER_LABEL

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
