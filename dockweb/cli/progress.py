"""Docker's jsonmessage display of a pull, load or push: a line per layer, redrawn in place
on a terminal, progress bars hidden otherwise."""

from __future__ import annotations

from dockweb.docker.jsonmessage import progress_bar


class PullRenderer:
    """Docker's jsonmessage display: one line per layer, redrawn in place on a terminal."""

    def __init__(self, out, *, quiet: bool):
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty()
        self.ids: dict[str, int] = {}

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        if event["kind"] == "message":
            self.ids = {}
            self.out.write(event["text"] + "\n")
            self.out.flush()
            return
        progress = progress_bar(event.get("current"), event.get("total"))
        if not self.tty:
            if progress:
                return  # docker hides progress bars when not on a terminal
            self.out.write(f"{event['id']}: {event['status']}\n")
            return
        line = self.ids.get(event["id"])
        if line is None:
            line = self.ids[event["id"]] = len(self.ids)
            self.out.write("\n")
        diff = len(self.ids) - line
        self.out.write(f"\x1b[{diff}A\r\x1b[2K{event['id']}: {event['status']} {progress}\r")
        self.out.write(f"\x1b[{diff}B")
        self.out.flush()

    def finish(self) -> None:
        self.out.flush()

