"""Go's ``text/tabwriter`` (docker/cli's copy, which measures cells in terminal columns):
cells are tab-terminated, the trailing cell of a line is not aligned, and a column is a
block of consecutive lines that have that cell. HTML filtering and escape sequences are not
supported (docker never enables them). Also docker/cli's ``formatter.Ellipsis``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

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
