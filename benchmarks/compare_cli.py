"""Run the same image commands with `docker` and with `dockweb`; compare what they print.

    cd /work/main && sudo /opt/dwvenv/bin/python -m benchmarks.compare_cli [SCENARIO ...]
        [--docker-only] [--show]

Small images built from tests/support/images.py's corpus are pushed to a docker-registry on
127.0.0.1 (started here). Each scenario is a list of steps (pushes and CLI commands); it is
run first with Debian's Docker client (/usr/bin/docker, 20.10) and then with
`python -m dockweb.cli` in a fresh, empty DOCKWEB_ROOT and DOCKWEB_DATA. Before and after a
scenario, Docker is cleared of every image the scenarios use, and the script checks that no
layer of them is left in Docker's layer store, so both sides start from nothing.

For every command, stdout, stderr and the exit status are compared line for line. Only what
must differ is normalised:
- `pull` output: Docker downloads layers concurrently, so lines of different layers
  interleave at random; the lines of each layer are compared in order, grouped by layer, and
  the lines without a layer ID in order. "Verifying Checksum" is left out: Docker coalesces
  a layer's progress and sometimes skips it (seen with 20.10.24);
- `image inspect` without --format: a chosen set of fields is compared (plus the list of
  top-level keys), because Metadata.LastTagTime and GraphDriver are the pull's time and
  Docker's overlay2 paths;
- `images` on Docker: rows of images that are not the scenario's (the daemon may be shared
  with another benchmark) are dropped, and the table realigned as Docker's tabwriter would;
- `images` tables on both sides: the rows of one image are sorted by repository, because
  docker/cli emits an image's repositories in Go map order (usually RepoTags order,
  sometimes not).
CREATED columns are not normalised: every image here has a fixed creation date (distinct, so
that Docker's newest-first order is deterministic), so "2 years ago" must agree.

Prints PASS or the differences per scenario; exits 1 if any scenario differs, 2 if the
dockweb half did not run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import common
from tests.support import images as im

# Debian's docker.io client, the same release as the daemon; /usr/local/bin/docker is a
# newer client whose messages differ.
DOCKER = "/usr/bin/docker"

INSPECT_FIELDS = (
    "Id",
    "RepoTags",
    "RepoDigests",
    "Parent",
    "Comment",
    "Created",
    "Author",
    "Config",
    "Architecture",
    "Os",
    "Size",
    "VirtualSize",
    "RootFS",
)

LAYER_LINE = re.compile(r"^([0-9a-f]{12}): ")


@dataclass(frozen=True)
class Output:
    stdout: str
    stderr: str
    returncode: int
    # After a Docker `images` command: IDs of the images Docker holds that are not ours.
    others: frozenset[str] = frozenset()


# -- the images ----------------------------------------------------------------------------


def dated(image: im.Image, created: str, history: list[dict] | None = None) -> im.Image:
    """The same layers and runtime config as `image`, with another creation date."""
    return im.Image(
        image.layers, image.config["config"], created=created, history=history, format=image.format
    )


@dataclass
class Images:
    base: im.Image
    shared_a: im.Image
    shared_b: im.Image
    symlinks: im.Image
    whiteouts: im.Image
    config: im.Image

    @classmethod
    def build(cls) -> Images:
        a, b = im.shared_base_pair()
        # History as docker build and buildkit write it: empty layers, comments, long
        # commands with tabs (truncated in `history` without --no-trunc).
        history = [
            {
                "created": "2024-06-01T00:00:00Z",
                "created_by": "/bin/sh -c #(nop) ADD file:4f1b2c3d5e6f7a8b9c0d1e2f3a4b in / ",
            },
            {
                "created": "2024-06-01T00:00:01Z",
                "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
                "empty_layer": True,
            },
            {
                "created": "2024-06-02T00:00:00Z",
                "created_by": "RUN /bin/sh -c mkdir -p /srv &&\tchown 1000:1000 /srv # buildkit",
                "comment": "buildkit.dockerfile.v0",
            },
            {
                "created": "2024-06-02T00:00:00Z",
                "created_by": 'ENTRYPOINT ["/bin/sh"]',
                "comment": "buildkit.dockerfile.v0",
                "empty_layer": True,
            },
        ]
        return cls(
            # Not the corpus's own date: these IDs must be this script's alone, since it
            # removes them from Docker (compare_rootfs pulls the corpus as it is).
            base=dated(im.busybox_base(), "2024-01-02T00:00:00Z"),
            shared_a=dated(a, "2024-02-01T00:00:00Z"),
            shared_b=dated(b, "2024-03-01T00:00:00Z"),
            symlinks=dated(im.with_symlinks(), "2024-04-01T00:00:00Z"),
            whiteouts=dated(im.with_whiteouts(), "2024-05-01T00:00:00Z"),
            config=dated(im.config_variety(), "2024-06-02T00:00:00Z", history),
        )

    def all(self) -> list[im.Image]:
        return [self.base, self.shared_a, self.shared_b, self.symlinks, self.whiteouts, self.config]


# -- scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Push:
    """Push `image` as host/repo:tag (moves the tag if it pointed elsewhere)."""

    repo: str
    tag: str
    image: im.Image


@dataclass(frozen=True)
class Cmd:
    """A CLI command, the same for both; `compare` names how its outputs are compared."""

    args: tuple[str, ...]
    compare: str = "exact"  # "exact" | "pull" | "inspect" | "masked" | "status"
    stdin: str | None = None  # what is typed at a prompt


Step = Push | Cmd


def cmd(*args: str, compare: str = "exact", stdin: str | None = None) -> Cmd:
    return Cmd(tuple(args), compare, stdin)


def pull(ref: str) -> Cmd:
    return cmd("pull", ref, compare="pull")


@dataclass
class Scenario:
    name: str
    title: str
    steps: list[Step] = field(default_factory=list)


def scenarios(host: str, imgs: Images) -> list[Scenario]:
    def r(name: str) -> str:
        return f"{host}/{name}"

    base_id = imgs.base.image_id
    sym_id = imgs.symlinks.image_id
    sym_digest = imgs.symlinks.manifest_digest
    shared_b_digest = imgs.shared_b.manifest_digest
    # base:1, and m:t pulled once more after it moved: the image it left is <repo> <none>
    moved_tag = [
        Push("base", "1", imgs.base),
        Push("m", "t", imgs.shared_a),
        pull(r("base:1")),
        pull(r("m:t")),
        Push("m", "t", imgs.shared_b),
        pull(r("m:t")),
    ]
    return [
        Scenario(
            "tags",
            "pull, tag, rmi one tag (Untagged only), rmi the last (Untagged and Deleted)",
            [
                Push("a", "1", imgs.base),
                pull(r("a:1")),
                cmd("tag", r("a:1"), r("a:2")),
                cmd("images"),
                cmd("rmi", r("a:1")),
                cmd("images"),
                cmd("rmi", r("a:2")),
                cmd("images"),
            ],
        ),
        Scenario(
            "shared",
            "two images sharing base layers: rmi one deletes only its own layers",
            [
                Push("a", "1", imgs.shared_a),
                Push("b", "1", imgs.shared_b),
                pull(r("a:1")),
                pull(r("b:1")),
                cmd("images", "-a"),
                cmd("rmi", r("a:1")),
                cmd("images", "-a"),
                cmd("rmi", r("b:1")),
                cmd("images", "-a"),
            ],
        ),
        Scenario(
            "conflict",
            "an image in two repositories: rmi by short ID is a conflict, -f by full ID untags all",
            [
                Push("x", "1", imgs.base),
                pull(r("x:1")),
                cmd("tag", r("x:1"), r("other/repo:t")),
                cmd("rmi", base_id.removeprefix("sha256:")[:12]),
                cmd("images"),
                cmd("rmi", "-f", base_id),
                cmd("images"),
            ],
        ),
        Scenario(
            "rmi-forms",
            "rmi by digest reference, full ID, short ID, ID prefix; missing and invalid names",
            [
                Push("y", "1", imgs.symlinks),
                pull(r("y:1")),
                cmd("rmi", f"{r('y')}@{sym_digest}"),
                cmd("images", "--digests"),
                cmd("rmi", sym_id),
                cmd("images"),
                pull(r("y:1")),
                cmd("rmi", sym_id.removeprefix("sha256:")[:12]),
                pull(r("y:1")),
                cmd("rmi", sym_id.removeprefix("sha256:")[:5]),
                pull(r("y:1")),
                cmd("rmi", sym_id[:15]),  # "sha256:" and 8 hex
                cmd("rmi", "nope"),
                cmd("rmi", "-f", "nope"),
                cmd("rmi", "Foo"),
                cmd("rmi", "-f", "Foo"),
                cmd("rmi", "nope:1.0", f"{r('y')}@sha256:{'0' * 64}"),
                pull(r("y:1")),
                cmd("rmi", "nope", r("y:1")),
                cmd("rmi", r("y:1")),
                cmd("images"),
            ],
        ),
        Scenario(
            "listing",
            "a moved tag leaves the old image as <repo> <none>; images filters and formats",
            [
                *moved_tag,
                cmd("images"),
                cmd("images", "-a"),
                cmd("images", "-f", "dangling=true"),
                cmd("images", "-f", "dangling=false"),
                cmd("images", "--digests"),
                cmd("images", "-q"),
                cmd("images", "-aq"),
                cmd("images", "--no-trunc"),
                cmd("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"),
                cmd("images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}"),
                cmd("images", "--format", "{{json .}}", r("base")),
                cmd("images", "-f", f"reference={r('m')}"),
                cmd("images", "-f", f"reference={host}/*:1"),
                cmd("images", "-f", f"before={r('m:t')}"),
                cmd("images", "-f", f"since={r('base:1')}"),
                cmd("images", "-f", f"before={shared_b_digest}"),
                cmd("images", r("m")),
                cmd("images", r("m:t")),
                cmd("images", r("base")),
                cmd("images", "-f", "dangling=maybe"),
                cmd("images", "-f", "color=red"),
                cmd("rmi", r("m:t")),
                cmd("images", "-a"),
            ],
        ),
        Scenario(
            "pull-output",
            "pull output: cold, up to date, shared layers (Already exists), by digest, missing",
            [
                Push("a", "1", imgs.shared_a),
                Push("b", "1", imgs.shared_b),
                pull(r("a:1")),
                pull(r("a:1")),
                pull(r("b:1")),
                pull(f"{r('b')}@{shared_b_digest}"),
                pull(r("a")),
                pull(r("a:nope")),
                pull(r("nope:1")),
                cmd("pull", "-q", r("a:1")),
            ],
        ),
        Scenario(
            "history-inspect",
            "image history and image inspect",
            [
                Push("c", "1", imgs.config),
                Push("s", "1", imgs.symlinks),
                pull(r("c:1")),
                pull(r("s:1")),
                cmd("history", r("c:1")),
                cmd("history", "--no-trunc", r("c:1")),
                cmd("history", r("s:1")),
                cmd("image", "history", "-q", r("s:1")),
                cmd("image", "history", "-H=false", r("s:1")),
                cmd(
                    "image",
                    "history",
                    "--human=false",
                    "--format",
                    "{{.Size}} {{.CreatedAt}}",
                    r("c:1"),
                ),
                cmd(
                    "image",
                    "inspect",
                    "--format",
                    "{{.Id}} {{.RepoTags}} {{.RepoDigests}} {{.Size}}",
                    r("c:1"),
                    r("s:1"),
                ),
                cmd("image", "inspect", r("c:1"), compare="inspect"),
                cmd("image", "inspect", r("s:1"), compare="inspect"),
                cmd("image", "inspect", "nope"),
            ],
        ),
        Scenario(
            "disk",
            "system df (shared layers, a dangling image from a moved tag, a container, a "
            "volume), df -v, the prune commands with their prompts",
            [
                *moved_tag,
                cmd("system", "df"),
                cmd("create", "--name", DISK_CONTAINER, "-v", f"{DISK_VOLUME}:/data",
                    r("base:1"), "true", compare="status"),
                cmd("system", "df"),
                cmd("system", "df", "-v", compare="masked"),
                cmd("system", "df", "--format", "{{.Type}}: {{.Size}} {{.Reclaimable}}"),
                cmd("system", "df", "--format", "raw"),
                cmd("image", "prune", stdin="n\n"),
                cmd("image", "prune", stdin="yes\n"),
                cmd("image", "prune", "--filter", "color=red", "-f"),
                cmd("image", "prune", stdin="y\n"),
                cmd("system", "df"),
                cmd("image", "prune", "-f"),
                cmd("image", "prune", "-a", "-f", "--filter", "until=2024-01-01T00:00:00Z"),
                cmd("image", "prune", "-a", "-f"),
                cmd("system", "df"),
                cmd("container", "prune", stdin="n\n"),
                cmd("container", "prune", "-f", compare="masked"),
                cmd("volume", "prune", stdin="\n"),
                cmd("volume", "prune", "-f"),
                cmd("system", "prune", stdin="n\n"),
                cmd("system", "prune", "-a", "--volumes", "--filter", "label=x", stdin="n\n"),
                cmd("system", "prune", "-a", "-f"),
                cmd("system", "df"),
                cmd("system", "df", "-v"),
            ],
        ),
    ]


# The disk scenario's container and volume (removed from Docker before and after).
DISK_CONTAINER = "dockweb-compare-df"
DISK_VOLUME = "dockweb-compare-df-vol"

# Container IDs and "N seconds ago" differ between the two sides by nature.
CONTAINER_ID_LINE = re.compile(r"^[0-9a-f]{12}(?=\s)|^[0-9a-f]{64}$")
AGO = re.compile(r"(Less than a second|About a minute|\d+ seconds?|\d+ minutes?) ago")


def masked(text: str) -> list[str]:
    """Lines with container IDs and ages masked, and column gaps collapsed (a masked cell
    changes the table's widths)."""
    return [
        CELL_GAP.sub("  ", AGO.sub("<time> ago", CONTAINER_ID_LINE.sub("<id>", line)))
        for line in text.splitlines()
    ]


# -- the two sides -------------------------------------------------------------------------


def run_docker(args: tuple[str, ...], stdin: str | None = None) -> Output:
    proc = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, input=stdin or "",
    )
    return Output(proc.stdout, proc.stderr, proc.returncode)


def run_docker_noting_others(ours: set[str]) -> Callable[[tuple[str, ...]], Output]:
    """run_docker that, after `images`, notes which images in Docker are not ours.

    The daemon may be shared (another benchmark reusing it), so `images` can list more.
    """

    def run(args: tuple[str, ...], stdin: str | None = None) -> Output:
        out = run_docker(args, stdin)
        if args[0] != "images":
            return out
        listed = run_docker(("images", "-aq", "--no-trunc")).stdout.split()
        return Output(out.stdout, out.stderr, out.returncode, frozenset(set(listed) - ours))

    return run


def run_dockweb(store: common.DockwebEnv) -> Callable[[tuple[str, ...]], Output]:
    def run(args: tuple[str, ...], stdin: str | None = None) -> Output:
        proc = subprocess.run(
            store.command(*args), cwd=common.REPO_ROOT, env=store.env(), capture_output=True,
            text=True, input=stdin or "",
        )
        return Output(proc.stdout, proc.stderr, proc.returncode)

    return run


def run_steps(
    steps: list[Step], host: str, run: Callable[[tuple[str, ...]], Output]
) -> list[Output]:
    outputs = []
    for step in steps:
        if isinstance(step, Push):
            im.push(host, step.repo, step.tag, step.image)
        else:
            outputs.append(run(step.args, step.stdin))
    return outputs


def docker_clear(imgs: Images) -> None:
    """Remove every image the scenarios use from Docker; check none of their layers is left."""
    run_docker(("rm", "-f", DISK_CONTAINER))
    run_docker(("volume", "rm", "-f", DISK_VOLUME))
    for image in imgs.all():
        if run_docker(("image", "inspect", image.image_id)).returncode == 0:
            run_docker(("rmi", "-f", image.image_id))
    for image in imgs.all():
        left = [c for c in image.chain_ids if common.docker_has_layer(c)]
        if left:
            raise RuntimeError(
                f"Docker still holds layer {left[0]} after removing the scenarios' images "
                "(another image or a container uses it); remove that, then rerun"
            )


# -- comparing -----------------------------------------------------------------------------


CELL_GAP = re.compile(r" {2,}")


def is_table(args: tuple[str, ...]) -> bool:
    """Whether `images` ARGS prints a table (header and tabwriter columns)."""
    if any(
        a in ("-q", "--quiet") or (a.startswith("-") and not a.startswith("--") and "q" in a)
        for a in args
    ):
        return False
    fmt = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--format"), None)
    return fmt is None or fmt.startswith("table")


def tabwrite(rows: list[list[str]]) -> list[str]:
    """Align cells as docker/cli's tabwriter does (minwidth 10, padding 3); last cell as is."""
    widths = [max(10, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    return ["".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[-1] for r in rows]


def without_others(out: Output, args: tuple[str, ...], host: str) -> str:
    """Docker's `images` output without the rows of images that are not the scenario's.

    A row is another's if it shows the ID of an image that is not ours, or (tables) if its
    repository is neither under our registry nor <none>. Tables are realigned after.
    """
    shorts = {i.removeprefix("sha256:")[:12] for i in out.others}
    table = is_table(args)
    lines = out.stdout.splitlines()
    head, body = (lines[:1], lines[1:]) if table and lines else ([], lines)
    kept = [
        line
        for line in body
        if not any(s in line for s in shorts)
        and not (table and not line.startswith((f"{host}/", "<none>")))
    ]
    if len(kept) == len(body):
        return out.stdout
    if table:
        rows = [CELL_GAP.split(line) for line in head + kept]
        if len({len(r) for r in rows}) == 1:
            return "\n".join(tabwrite(rows)) + "\n"
    return "\n".join(head + kept) + "\n"


def one_image_rows_sorted(lines: list[str]) -> list[str]:
    """Rows of one image sorted by repository, in a table with an IMAGE ID column.

    docker/cli groups an image's references by repository in a Go map, and Go iterates maps
    from a random slot: an image in two repositories comes out in either order.
    """
    if not lines or "IMAGE ID" not in CELL_GAP.split(lines[0]):
        return lines
    col = CELL_GAP.split(lines[0]).index("IMAGE ID")
    out = lines[:1]
    run: list[str] = []

    def flush() -> None:
        out.extend(sorted(run, key=lambda line: CELL_GAP.split(line)[0]))
        run.clear()

    for line in lines[1:]:
        cells = CELL_GAP.split(line)
        if run and (len(cells) <= col or cells[col] != CELL_GAP.split(run[0])[col]):
            flush()
        run.append(line)
    flush()
    return out


def pull_canonical(text: str) -> list[str]:
    """Pull output with each layer's lines grouped (layers sorted by ID), in their order.

    "Verifying Checksum" lines are left out: Docker's transfer broadcaster hands watchers
    only the latest progress of a layer, so that status is sometimes replaced by
    "Download complete" before the client sees it.
    """
    head: list[str] = []
    middle: list[str] = []
    tail: list[str] = []
    by_layer: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = LAYER_LINE.match(line)
        if m and line.rstrip() == f"{m.group(1)}: Verifying Checksum":
            continue
        if m:
            # A message between layer lines: kept, marked, in the order seen.
            middle.extend(f"(between layer lines) {t}" for t in tail)
            tail.clear()
            by_layer.setdefault(m.group(1), []).append(line)
        elif by_layer:
            tail.append(line)
        else:
            head.append(line)
    layers = [line for layer in sorted(by_layer) for line in by_layer[layer]]
    return head + middle + layers + tail


def inspect_canonical(text: str) -> list[str]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        return [f"(not JSON: {err})", *text.splitlines()]
    out = []
    for item in items:
        out.append("keys: " + " ".join(sorted(item)))
        picked = {k: item.get(k, "(missing)") for k in INSPECT_FIELDS}
        out.extend(json.dumps(picked, indent=4, sort_keys=True, ensure_ascii=False).splitlines())
    return out


def compare(step: Cmd, docker: Output, dockweb: Output, host: str) -> list[str]:
    """Differences as unified diffs of stdout and stderr, and the exit statuses."""
    d_out, w_out = docker.stdout, dockweb.stdout
    if step.compare == "pull":
        d_lines, w_lines = pull_canonical(d_out), pull_canonical(w_out)
    elif step.compare == "inspect":
        d_lines, w_lines = inspect_canonical(d_out), inspect_canonical(w_out)
    elif step.compare == "masked":
        d_lines, w_lines = masked(d_out), masked(w_out)
    elif step.compare == "status":
        # only the exit status: the output names a random container ID, and dockerd adds
        # warnings about its own host networking
        d_lines = w_lines = []
        docker = Output("", "", docker.returncode)
        dockweb = Output("", "", dockweb.returncode)
    elif step.args[0] == "images":
        d_lines = without_others(docker, step.args, host).splitlines()
        w_lines = w_out.splitlines()
        if is_table(step.args):
            d_lines, w_lines = one_image_rows_sorted(d_lines), one_image_rows_sorted(w_lines)
    else:
        d_lines, w_lines = d_out.splitlines(), w_out.splitlines()
    found = []
    for what, a, b in (
        ("stdout", d_lines, w_lines),
        ("stderr", docker.stderr.splitlines(), dockweb.stderr.splitlines()),
    ):
        if a != b:
            diff = difflib.unified_diff(a, b, f"docker {what}", f"dockweb {what}", lineterm="", n=2)
            found.append("\n".join(repr_spaces(line) for line in diff))
    if docker.returncode != dockweb.returncode:
        found.append(f"exit status: docker {docker.returncode}, dockweb {dockweb.returncode}")
    return found


def repr_spaces(line: str) -> str:
    """Make trailing whitespace and control characters visible in a diff line."""
    stripped = line.rstrip(" \t")
    shown = stripped + "·" * (len(line) - len(stripped))
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in shown)


def show(label: str, out: Output) -> str:
    lines = [f"  [{label}] exit {out.returncode}"]
    lines += [f"    out| {line}" for line in out.stdout.splitlines()]
    lines += [f"    err| {line}" for line in out.stderr.splitlines()]
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--docker-only", action="store_true", help="run Docker's half only")
    parser.add_argument("--show", action="store_true", help="print every command's outputs")
    args = parser.parse_args()

    # common's helpers call `docker` from PATH: make that Debian's client too.
    os.environ["PATH"] = f"{Path(DOCKER).parent}:{os.environ.get('PATH', '')}"
    run_dockweb_half = not args.docker_only
    if run_dockweb_half and not common.dockweb_cli_ready():
        print("dockweb CLI not there yet (dockweb/cli/__main__.py): running Docker only")
        run_dockweb_half = False

    imgs = Images.build()
    failed: list[str] = []
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="compare-cli-", dir=common.SCRATCH))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        reg = stack.enter_context(common.registry(work / "registry"))
        stack.enter_context(common.dockerd(common.DOCKERD_LOG))
        ours = {i.image_id for i in imgs.all()}
        stack.callback(docker_clear, imgs)

        all_scenarios = scenarios(reg.host, imgs)
        names = args.scenarios or [s.name for s in all_scenarios]
        unknown = set(names) - {s.name for s in all_scenarios}
        if unknown:
            parser.error(
                f"unknown scenarios: {', '.join(sorted(unknown))} "
                f"(there are: {', '.join(s.name for s in all_scenarios)})"
            )
        for number, scenario in enumerate(all_scenarios, 1):
            if scenario.name not in names:
                continue
            print(f"== {number}. {scenario.name}: {scenario.title}", flush=True)
            docker_clear(imgs)
            docker_outs = run_steps(scenario.steps, reg.host, run_docker_noting_others(ours))
            docker_clear(imgs)
            commands = [s for s in scenario.steps if isinstance(s, Cmd)]
            if not run_dockweb_half:
                for step, out in zip(commands, docker_outs, strict=True):
                    print(f"$ docker {' '.join(step.args)}\n{show('docker', out)}")
                continue
            store = common.DockwebEnv.fresh()
            try:
                dockweb_outs = run_steps(scenario.steps, reg.host, run_dockweb(store))
            finally:
                store.cleanup()
            differing = 0
            for step, d, w in zip(commands, docker_outs, dockweb_outs, strict=True):
                found = compare(step, d, w, reg.host)
                if args.show or found:
                    print(f"$ docker|dockweb {' '.join(step.args)}")
                if args.show:
                    print(show("docker", d))
                    print(show("dockweb", w))
                for text in found:
                    print("\n".join("  " + line for line in text.splitlines()))
                differing += bool(found)
            if differing:
                failed.append(scenario.name)
                print(f"-- {scenario.name}: DIFFERS ({differing} of {len(commands)} commands)\n")
            else:
                print(f"-- {scenario.name}: PASS ({len(commands)} commands)\n")
    if not run_dockweb_half:
        return 2
    print(f"summary: {len(names) - len(failed)} of {len(names)} scenarios pass", end="")
    print(f"; differ: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
