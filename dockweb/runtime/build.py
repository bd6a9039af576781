"""Build images from a Dockerfile as Docker 20.10's classic builder does (DOCKER_BUILDKIT=0),
and commit containers (``docker commit``).

Every instruction after ``FROM`` yields an image whose ``parent`` is the previous step's image:
these intermediate images stay in the store (``images -a`` lists them, ``history`` names them)
and are what the cache looks up. Guarantees:

- The cache is Docker's: a step is a hit when a child image of the current image has the same
  ``container_config`` (compared field by field as moby's ``compare``); that config carries
  the step's command (``/bin/sh -c #(nop)  ENV A=b``, ``/bin/sh -c echo hi``, with the build
  args in effect prefixed as ``|1 A=b``) and, for COPY/ADD, the sources' content hash. The
  cache therefore lives in the store and survives restarts; ``no_cache`` skips the lookup.
- A layer is made from a writable layer (a container's ``upper/`` or the upper dir of a
  private overlay mount for COPY/ADD) by writing its tar stream in overlay-diff form
  (whiteouts ``.wh.x``, opaque ``.wh..wh..opq``) deterministically (sorted names, numeric
  owners, whole-second times), hashing it (the DiffID) and applying it with
  ``archive.apply_layer`` into a layer scratch dir, committed with ``Store.commit_layer``. An
  empty writable layer adds no layer: the history entry says ``empty_layer`` (moby's
  ``NewChildImage``). A layer whose chain ID exists already is reused.
- Work in progress lives under ``<root>/builds/<random>/`` (never ``tmp/``, which a
  concurrent ``reconcile`` may empty) and is removed when the build ends, however it ends.
- Output is classic ``docker build``'s, line by line, through ``on_output(text)``.

Here: the builder that runs the steps (``Builder``, ``build``) and ``commit``. The Dockerfile's
text is read by ``dockweb.runtime.dockerfile``, the context by ``dockweb.runtime.buildcontext``,
and layers and image records are made by ``dockweb.runtime.childimage``.

Multi-stage builds are the classic builder's: each ``FROM`` starts a stage (its cache looked
up afresh, its build args its own); a finished stage is kept by index and name for ``FROM
<stage>`` and ``COPY --from``; ``COPY --from`` also takes an image, pulled when missing.

A base image's ONBUILD triggers run as part of its FROM step, as moby's
dispatchTriggeredOnBuild.

Not done: ``security.capability`` xattrs in built layers, ADD of URLs other than loopback
ones.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import gzip
import hashlib
import json
import lzma
import os
import re
import secrets
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dockweb.runtime import oci
from dockweb.runtime import reference as refs
from dockweb.runtime.archive import untar
from dockweb.runtime.buildcontext import BuildContext, ImageSource, file_tarsum
from dockweb.runtime.childimage import (
    find_cached,
    image_config_bytes,
    layer_from_upper,
    put_child_image,
    rw_layer,
)
from dockweb.runtime.containers import ContainerSpec, Status
from dockweb.runtime.containers.health import config_text as healthcheck_text
from dockweb.runtime.containers.health import merge as merge_health
from dockweb.runtime.containers.state import now_rfc3339nano
from dockweb.runtime.digest import short_id
from dockweb.runtime.dockerfile import (
    BUILTIN_ARGS,
    Instruction,
    expand_word,
    name_values,
    parse_dockerfile,
    parse_error,
    parse_instruction,
)
from dockweb.runtime.errors import (
    BuildError,
    ContainerStartError,
    DockwebError,
    ImageNotFound,
    InvalidArgument,
    LayerError,
)
from dockweb.runtime.store import ImageRecord, Store

Output = Callable[[str], None]

DEFAULT_SHELL = ["/bin/sh", "-c"]


def _go_quote_list(items: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


# -- the builder ------------------------------------------------------------------------


@dataclass
class BuildOptions:
    dockerfile: str  # the Dockerfile's text
    context_dir: str | None = None
    dockerfile_name: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    remove: bool = True  # remove intermediate containers after a successful step
    force_rm: bool = False  # remove them even after a failed step
    labels: dict[str, str] = field(default_factory=dict)  # --label: LABEL steps at the end
    target: str = ""  # --target: the stage to stop after
    pull: bool = False  # --pull: pull every FROM and COPY --from image, even one the store has
    network: str = ""  # --network: the RUN containers' network ("" or "default": bridge)
    extra_hosts: list[str] = field(default_factory=list)  # --add-host name:ip|host-gateway
    cache_from: list[str] = field(default_factory=list)  # --cache-from: images as cache sources


@dataclass
class StepResult:
    number: int
    instruction: str
    image_id: str
    cached: bool = False
    layer_size: int | None = None  # None: no layer (metadata only, or nothing changed)


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]
    steps: list[StepResult]


class _State:
    def __init__(self):
        self.image: ImageRecord | None = None  # current image (None: scratch, nothing yet)
        self.base_config: dict = {}
        self.config: dict = {}  # the run config
        self.cmd_set = False
        self.author = ""
        self.args: dict[str, str | None] = {}  # ARGs declared so far (value or None)

    @property
    def image_id(self) -> str:
        return self.image.id if self.image else ""


class Builder:
    """One build. Use ``build()``; the class only keeps the build's state together."""

    def __init__(
        self,
        store: Store,
        manager,
        options: BuildOptions,
        *,
        on_output: Output | None = None,
        pull: Callable[[str, Output], None] | None = None,
        on_stderr: Output | None = None,
        on_stage: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        self.cancel = cancel
        self.store = store
        self.manager = manager
        self.opts = options
        self.out = on_output or (lambda text: None)
        self.err_out = on_stderr or self.out
        self.on_stage = on_stage or (lambda image_id: None)
        self.pull = pull
        self.state = _State()
        self.used_args: set[str] = set()
        self.meta_args: dict[str, str | None] = {}
        self.escape = "\\"
        self.context = BuildContext(options.context_dir, options.dockerfile_name)
        self.work_dir = os.path.join(store.root, "builds", secrets.token_hex(8))
        self.stages: dict[str, str] = {}  # name -> image ID of each finished named stage
        self.stage_images: list[str] = []  # image ID of each finished stage, by index
        self.stage_name = ""  # the current stage's name
        self.cache_busted = False  # a step of this stage missed the cache: no more lookups
        self.cache_sources: list[ImageRecord] = []  # --cache-from images of this stage
        self.disable_commit = False  # commit --change: dispatch to the config only

    # output helpers
    def _say(self, text: str) -> None:
        self.out(text + "\n")

    def run(self) -> BuildResult:
        instructions, self.escape = parse_dockerfile(self.opts.dockerfile)
        tags = [self._check_tag(t) for t in self.opts.tags]
        self._check_instructions(instructions)
        os.makedirs(self.work_dir)
        try:
            return self._run(instructions, tags)
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.work_dir))

    def _check_tag(self, tag: str) -> refs.Reference:
        try:
            ref = refs.parse_normalized_named(tag)
        except DockwebError:
            raise BuildError(
                f'invalid argument "{tag}" for "-t, --tag" flag: invalid reference format'
            ) from None
        if ref.digest:
            raise BuildError(
                f'invalid argument "{tag}" for "-t, --tag" flag: invalid reference format'
            )
        return ref

    def _check_instructions(self, instructions: list[Instruction]) -> None:
        seen_from = False
        for inst in instructions:
            if inst.name == "FROM":
                seen_from = True
                _stage_name(inst)
            elif not seen_from and inst.name != "ARG":
                raise BuildError("No build stage in current context", line=inst.line)
        if not instructions:
            raise BuildError(f"the Dockerfile ({self.opts.dockerfile_name}) cannot be empty")
        if not seen_from:
            raise BuildError("No build stage in current context")

    def _run(self, instructions: list[Instruction], tags: list[refs.Reference]) -> BuildResult:
        steps: list[StepResult] = []
        first = next(i for i, inst in enumerate(instructions) if inst.name == "FROM")
        meta = instructions[:first]
        body = self._target_stages(instructions[first:]) + self._label_instructions()
        total = len(meta) + len(body)
        for n, inst in enumerate(meta, 1):
            # ARGs before the first FROM are steps that make no image (moby's processMetaArg)
            self.out(f"Step {n}/{total} : {inst.original}")
            self.out("\n")
            self._meta_arg(inst)
            steps.append(StepResult(n, inst.original, ""))
        for n, inst in enumerate(body, len(meta) + 1):
            if self.cancel is not None and self.cancel.is_set():
                # the client went away: moby's check between two steps
                self.out("Build cancelled\n")
                raise BuildError("Build cancelled")
            if inst.name == "FROM" and n > len(meta) + 1:
                self._end_stage()
                name = _stage_name(inst)
                if name and name in self.stages:
                    # moby's checkStageNameAvailable, before the step is printed
                    raise BuildError(f"{name} stage name already used", line=inst.line)
            # moby's printCommand: the step, then its newline, written separately
            self.out(f"Step {n}/{total} : {inst.original}")
            self.out("\n")
            step = self._dispatch(n, inst)
            steps.append(step)
            self._say(f" ---> {short_id(step.image_id)}")
        self._end_stage()
        unused = sorted(
            k for k in self.opts.build_args if k not in self.used_args and k not in BUILTIN_ARGS
        )
        if unused:
            self._say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        image_id = self.state.image_id
        if not image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        self._say(f"Successfully built {short_id(image_id)}")
        for ref in tags:
            self.store.add_reference(ref, image_id, force=True)
            self._say(f"Successfully tagged {ref.familiar_string()}")
        return BuildResult(image_id, [t.familiar_string() for t in tags], steps)

    def _end_stage(self) -> None:
        """A stage ends (moby's emitImageID and commitStage): its image is announced and
        kept by index and name for later ``FROM <stage>`` and ``COPY --from``."""
        if self.state.image_id:
            self.on_stage(self.state.image_id)
        self.stage_images.append(self.state.image_id)
        if self.stage_name:
            self.stages[self.stage_name] = self.state.image_id

    def _target_stages(self, body: list[Instruction]) -> list[Instruction]:
        """The instructions up to the end of the ``target`` stage (all without one)."""
        target = self.opts.target.lower()
        if not target:
            return body
        for i, inst in enumerate(body):
            words = inst.rest.split() if inst.name == "FROM" else []
            if len(words) == 3 and words[1].lower() == "as" and words[2].lower() == target:
                end = next(
                    (j for j in range(i + 1, len(body)) if body[j].name == "FROM"), len(body)
                )
                return body[:end]
        raise BuildError(f"failed to reach build target {self.opts.target} in Dockerfile")

    def _label_instructions(self) -> list[Instruction]:
        """``--label`` as moby's buildLabelOptions: one LABEL a step, sorted by key, added to
        the last stage, its key and value taken literally (quoted here so that nothing in
        them is expanded or split)."""
        esc = self.escape

        def quote(text: str) -> str:
            special = {'"', "$", esc}
            return '"' + "".join(esc + ch if ch in special else ch for ch in text) + '"'

        return [
            Instruction(
                name="LABEL",
                rest=f"{quote(k)}={quote(v)}",
                line=0,
                original=f"LABEL {k}={v}",
            )
            for k, v in sorted(self.opts.labels.items())
        ]

    # -- variables

    def _env(self) -> dict[str, str]:
        env = {}
        for k, v in self._arg_values().items():
            env[k] = v
        for e in self.state.config.get("Env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        return env

    def _arg_values(self) -> dict[str, str]:
        """Declared ARGs with a value (from --build-arg or their default)."""
        out = {}
        for k, default in self.state.args.items():
            value = self.opts.build_args.get(k)
            value = default if value is None else value
            if value is not None:
                out[k] = value
        return out

    def _expand(self, word: str, inst: Instruction) -> str:
        try:
            return expand_word(word, self._env(), self.escape)
        except DockwebError as e:
            raise parse_error(inst.line, str(e)) from None

    def _meta_arg(self, inst: Instruction) -> None:
        """moby's processMetaArg: the default expanded with the ARGs before it."""
        key, eq, value = inst.rest.partition("=")
        if eq:
            try:
                value = expand_word(value, self._meta_env(), self.escape)
            except DockwebError as e:
                raise parse_error(inst.line, str(e)) from None
        self.meta_args[key] = value if eq else None
        if key in self.opts.build_args:
            self.used_args.add(key)

    def _meta_env(self) -> dict[str, str]:
        """The ARGs before the first FROM with their values (a --build-arg wins)."""
        return {
            k: (self.opts.build_args.get(k) if k in self.opts.build_args else v) or ""
            for k, v in self.meta_args.items()
        }

    # -- dispatch

    def _dispatch(self, n: int, inst: Instruction) -> StepResult:
        handler = getattr(self, f"_do_{inst.name.lower()}")
        return handler(n, inst)

    def _do_from(self, n: int, inst: Instruction) -> StepResult:
        meta_env = self._meta_env()
        name = _stage_name(inst)
        base = expand_word(inst.rest.split()[0], meta_env, self.escape)
        if not base:
            raise BuildError(f"base name ({inst.rest.split()[0]}) should not be blank")
        self.state = _State()
        self.stage_name = name
        # moby's imageProber.Reset: each stage looks the cache up afresh
        self.cache_busted = False
        self.cache_sources = self._cache_sources()
        stage_image = self.stages.get(base.lower())
        if base.lower() == "scratch" or stage_image == "":
            self.state.config = {"Env": [f"PATH={oci.DEFAULT_PATH}"]}
            return StepResult(n, inst.original, "")
        rec = self.store.get_image(stage_image) if stage_image else self._base_image(base)
        self.state.image = rec
        self.state.config = dict(rec.config.get("config") or {})
        env = list(self.state.config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.append(f"PATH={oci.DEFAULT_PATH}")
        self.state.config["Env"] = env
        self._onbuild_triggers(n)
        return StepResult(n, inst.original, self.state.image_id)

    def _onbuild_triggers(self, n: int) -> None:
        """moby's dispatchTriggeredOnBuild: the base image's ONBUILD triggers run as steps
        of this FROM (no Step lines of their own), removed from the config first."""
        triggers = list(self.state.config.get("OnBuild") or [])
        if not triggers:
            return
        self.state.config["OnBuild"] = None
        self._say(f"# Executing {len(triggers)} build trigger" + ("s" if len(triggers) > 1 else ""))
        for trigger in triggers:
            instructions, _ = parse_dockerfile(trigger)
            if len(instructions) != 1:
                raise BuildError("onbuild trigger should be a single expression")
            self._dispatch(n, instructions[0])

    def _cache_sources(self) -> list[ImageRecord]:
        """The --cache-from images the store has (moby's MakeImageCache skips the others)."""
        out = []
        for ref in self.opts.cache_from:
            with contextlib.suppress(DockwebError):
                out.append(self.store.lookup(ref))
        return out

    def _base_image(self, name: str) -> ImageRecord:
        """An image by reference or ID, pulled when the store lacks it or with --pull
        (moby's imageSources.Get with PullOptionPreferLocal or ForcePull)."""
        if self.opts.pull and self.pull is not None:
            self.pull(name, self.out)
            return self.store.lookup(name)
        try:
            return self.store.lookup(name)
        except ImageNotFound:
            if self.pull is None:
                raise
        self.pull(name, self.out)
        return self.store.lookup(name)

    # metadata instructions: a container is created (" ---> Running in"), nothing runs

    def _do_env(self, n: int, inst: Instruction) -> StepResult:
        pairs = name_values(inst, self.escape)
        parts = ["ENV"]
        env = list(self.state.config.get("Env") or [])
        for k, v in pairs:
            k, v = self._expand(k, inst), self._expand(v, inst)
            env = oci.merge_env(env, [f"{k}={v}"])
            parts.append(f"{k}={v}")
        self.state.config["Env"] = env
        return self._commit(n, inst, " ".join(parts))

    def _do_label(self, n: int, inst: Instruction) -> StepResult:
        pairs = name_values(inst, self.escape)
        labels = dict(self.state.config.get("Labels") or {})
        parts = ["LABEL"]
        for k, v in pairs:
            k, v = self._expand(k, inst), self._expand(v, inst)
            labels[k] = v
            parts.append(f"{k}={v}")
        self.state.config["Labels"] = labels
        return self._commit(n, inst, " ".join(parts))

    def _do_maintainer(self, n: int, inst: Instruction) -> StepResult:
        if not inst.rest:
            raise parse_error(inst.line, "MAINTAINER requires exactly one argument")
        self.state.author = inst.rest
        return self._commit(n, inst, f"MAINTAINER {inst.rest}")

    def _cmd_line(self, inst: Instruction) -> list[str]:
        if inst.json_args is not None:
            return list(inst.json_args)
        if not inst.rest:
            return []
        return list(self.state.config.get("Shell") or DEFAULT_SHELL) + [inst.rest]

    def _do_cmd(self, n: int, inst: Instruction) -> StepResult:
        cmd = self._cmd_line(inst)
        self.state.config["Cmd"] = cmd
        self.state.cmd_set = True
        return self._commit(n, inst, f"CMD {_go_quote_list(cmd)}")

    def _do_entrypoint(self, n: int, inst: Instruction) -> StepResult:
        ep = self._cmd_line(inst) or None
        self.state.config["Entrypoint"] = ep
        if not self.state.cmd_set:
            self.state.config["Cmd"] = None
        return self._commit(n, inst, f"ENTRYPOINT {_go_quote_list(ep or [])}")

    def _do_shell(self, n: int, inst: Instruction) -> StepResult:
        if inst.json_args is None:
            raise parse_error(inst.line, "SHELL requires the arguments to be in JSON form")
        if not inst.json_args:
            raise parse_error(inst.line, "SHELL requires at least one argument")
        self.state.config["Shell"] = list(inst.json_args)
        return self._commit(n, inst, f"SHELL [{' '.join(inst.json_args)}]")

    def _do_expose(self, n: int, inst: Instruction) -> StepResult:
        # moby's parser sorts the words as written; each is then expanded (into words)
        words = [w for raw in sorted(inst.rest.split()) for w in self._expand(raw, inst).split()]
        if not words:
            raise parse_error(inst.line, "EXPOSE requires at least one argument")
        ports = dict(self.state.config.get("ExposedPorts") or {})
        for w in words:
            port, _, proto = w.partition("/")
            proto = (proto or "tcp").lower()
            lo, dash, hi = port.partition("-")
            if not lo.isdigit() or (dash and not hi.isdigit()):
                raise BuildError(f"Invalid containerPort: {port}", line=inst.line)
            for p in range(int(lo), int(hi if dash else lo) + 1):
                ports[f"{p}/{proto}"] = {}
        self.state.config["ExposedPorts"] = ports
        return self._commit(n, inst, "EXPOSE " + " ".join(words))

    def _do_user(self, n: int, inst: Instruction) -> StepResult:
        if not inst.rest:
            raise parse_error(inst.line, "USER requires exactly one argument")
        user = self._expand(inst.rest, inst)
        self.state.config["User"] = user
        return self._commit(n, inst, f"USER {user}")

    def _do_volume(self, n: int, inst: Instruction) -> StepResult:
        words = inst.json_args if inst.json_args is not None else inst.rest.split()
        words = [self._expand(w, inst).strip() for w in words]
        if not words:
            raise parse_error(inst.line, "VOLUME requires at least one argument")
        if any(not w for w in words):
            raise parse_error(inst.line, "VOLUME specified can not be an empty string")
        volumes = dict(self.state.config.get("Volumes") or {})
        for w in words:
            volumes[w] = {}
        self.state.config["Volumes"] = volumes
        return self._commit(n, inst, f"VOLUME [{' '.join(words)}]")

    def _do_stopsignal(self, n: int, inst: Instruction) -> StepResult:
        sig = self._expand(inst.rest, inst)
        if not sig:
            raise parse_error(inst.line, "STOPSIGNAL requires exactly one argument")
        self.state.config["StopSignal"] = sig
        return self._commit(n, inst, f"STOPSIGNAL {sig}")

    def _do_onbuild(self, n: int, inst: Instruction) -> StepResult:
        trigger = inst.rest.split(" ", 1)[0].upper()
        if not trigger:
            raise parse_error(inst.line, "ONBUILD requires at least one argument")
        if trigger == "ONBUILD":
            raise parse_error(inst.line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise parse_error(inst.line, f"{trigger} isn't allowed as an ONBUILD trigger")
        self.state.config["OnBuild"] = list(self.state.config.get("OnBuild") or []) + [inst.rest]
        return self._commit(n, inst, f"ONBUILD {inst.rest}")

    def _do_healthcheck(self, n: int, inst: Instruction) -> StepResult:
        words = inst.rest.split(None, 1)
        if not words:
            raise parse_error(inst.line, "HEALTHCHECK requires at least one argument")
        kind = words[0].upper()
        if kind == "NONE":
            health: dict = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = words[1] if len(words) > 1 else ""
            sub = parse_instruction("CMD " + rest, inst.line) if rest else None
            if sub is None:
                raise parse_error(inst.line, "Missing command after HEALTHCHECK CMD")
            test = ["CMD", *sub.json_args] if sub.json_args is not None else ["CMD-SHELL", rest]
            health = {"Test": test}
            for key, flag in (("Interval", "interval"), ("Timeout", "timeout"),
                              ("StartPeriod", "start-period")):  # fmt: skip
                if flag in inst.flags:
                    health[key] = _duration_ns(inst.flags[flag], inst.line)
            if "retries" in inst.flags:
                health["Retries"] = int(inst.flags["retries"])
        else:
            raise parse_error(inst.line, f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        # the history says what the line says; the image's config has the unset fields from
        # the parent's, as dockerd's commit merges a config with its parent image's
        self.state.config["Healthcheck"] = merge_health(
            health, self.state.config.get("Healthcheck")
        )
        return self._commit(n, inst, f"HEALTHCHECK {healthcheck_text(health)}")

    def _do_arg(self, n: int, inst: Instruction) -> StepResult:
        words = inst.rest.split()
        if len(words) != 1:
            raise parse_error(inst.line, "ARG requires exactly one argument")
        key, eq, value = words[0].partition("=")
        if not key:
            raise parse_error(inst.line, "ARG names can not be blank")
        default = self._expand(value, inst) if eq else None
        if default is None and key in self.meta_args:
            default = self.meta_args[key]
        self.state.args[key] = default
        if key in self.opts.build_args:
            self.used_args.add(key)
        return self._commit(n, inst, f"ARG {key}" + (f"={default}" if eq else ""))

    def _do_workdir(self, n: int, inst: Instruction) -> StepResult:
        if not inst.rest:
            raise parse_error(inst.line, "WORKDIR requires exactly one argument")
        path = self._expand(inst.rest, inst)
        current = self.state.config.get("WorkingDir") or "/"
        wd = os.path.normpath(path if path.startswith("/") else os.path.join("/", current, path))
        self.state.config["WorkingDir"] = wd
        return self._commit(n, inst, f"WORKDIR {wd}", mkdir=wd, one_word=True)

    # -- commits

    def _probe_config(self, cmd: list[str]) -> dict:
        cfg = dict(self.state.config)
        cfg["Cmd"] = cmd
        cfg["Image"] = self.state.image_id
        return cfg

    def _probe(self, container_config: dict) -> str | None:
        """moby's imageProber.Probe: once a step of the stage misses, the rest of the stage
        is built without looking (``cacheBusted``)."""
        if self.opts.no_cache or self.cache_busted:
            return None
        if self.opts.cache_from:
            found = self._cache_from_lookup(container_config)
        else:
            found = find_cached(self.store, self.state.image_id, container_config)
        if found:
            self._say(" ---> Using cache")
        else:
            self.cache_busted = True
        return found

    def _cache_from_lookup(self, container_config: dict) -> str | None:
        """moby's imageCache.GetCache with --cache-from: a local hit counts only when it is
        an ancestor of a cache source; otherwise a source whose history continues the
        current image's with this step's command gives the step: the source itself at its
        last step (its parent set to the current image), else an image restored from its
        next layer and history entry (moby's restoreCachedImage)."""
        local = find_cached(self.store, self.state.image_id, container_config)
        if local and any(self._is_ancestor(s.id, local) for s in self.cache_sources):
            return local
        parent = self.state.image
        p_history = list(parent.config.get("history") or []) if parent else []
        p_diffs = list(parent.config.get("rootfs", {}).get("diff_ids") or []) if parent else []
        n = len(p_history)
        wanted = " ".join(container_config.get("Cmd") or [])
        for target in self.cache_sources:
            t_history = list(target.config.get("history") or [])
            t_diffs = list(target.config.get("rootfs", {}).get("diff_ids") or [])
            if not t_history or len(t_history) <= n:
                continue
            if parent is not None and (p_history or p_diffs):
                if len(p_diffs) > len(t_diffs) or t_history[:n] != p_history:
                    continue
                if t_diffs[: len(p_diffs)] != p_diffs:
                    continue
            if t_history[n].get("created_by", "") != wanted:
                continue
            if len(t_history) - 1 == n:
                if parent is not None:
                    self.store.set_parent(target.id, parent.id)
                return target.id
            restored = self._restore_cached(parent, target, container_config, n)
            self.cache_sources = [target]  # moby: never jump to another source after this
            return restored
        return None

    def _is_ancestor(self, image_id: str, ancestor: str) -> bool:
        seen = set()
        while image_id and image_id not in seen:
            seen.add(image_id)
            try:
                image_id = self.store.get_image(image_id).parent
            except ImageNotFound:
                return False
            if image_id == ancestor:
                return True
        return False

    def _restore_cached(
        self, parent: ImageRecord | None, target: ImageRecord, config: dict, n: int
    ) -> str:
        history = list(parent.config.get("history") or []) if parent else []
        diffs = list(parent.config.get("rootfs", {}).get("diff_ids") or []) if parent else []
        entry = target.config["history"][n]
        history.append(entry)
        if not entry.get("empty_layer"):
            layer_index = sum(1 for h in target.config["history"][:n] if not h.get("empty_layer"))
            diffs.append(target.config["rootfs"]["diff_ids"][layer_index])
        image = {
            "architecture": target.config.get("architecture") or "",
            "config": config,
            "created": entry.get("created", ""),
            "history": history,
            "os": target.config.get("os") or "linux",
            "rootfs": {"type": "layers", "diff_ids": diffs},
        }
        if target.config.get("author"):
            image["author"] = target.config["author"]
        rec = self.store.put_image(image_config_bytes(image), parent=parent.id if parent else "")
        return rec.id

    def _commit(
        self, n: int, inst: Instruction, comment: str, *, mkdir: str = "", one_word: bool = False
    ) -> StepResult:
        """A step that changes the config only (WORKDIR also makes its directory): Docker's
        ``commit`` with a ``#(nop)`` command, through a created (never started) container.
        The command is moby's ``withCmdComment`` (``"#(nop) ", comment``: two spaces in the
        history) or, with ``one_word``, ``withCmdCommentString`` (``"#(nop) " + comment``)."""
        if self.disable_commit:
            return StepResult(n, inst.original, "")
        shell = list(self.state.config.get("Shell") or DEFAULT_SHELL)
        nop = ["#(nop) " + comment] if one_word else ["#(nop) ", comment]
        container_config = self._probe_config([*shell, *nop])
        cached = self._probe(container_config)
        if cached:
            return self._use_cache(n, inst, cached)
        if self.state.image is None:
            # FROM scratch and nothing yet: there is no image to create a container from
            with rw_layer(self.store, None, self.work_dir) as (merged, upper):
                if mkdir:
                    _mkdir_in(merged, mkdir, 0, 0)
            return self._new_image(n, inst, container_config, upper, container_id="")
        c = self.manager.create(
            ContainerSpec(image=self.state.image_id, cmd=container_config["Cmd"], entrypoint=[])
        )
        self._say(f" ---> Running in {short_id(c.id)}")
        try:
            if mkdir:
                rootfs = self.manager.mount_rootfs(c)
                _mkdir_in(rootfs, mkdir, 0, 0)
            step = self._new_image(
                n, inst, container_config, os.path.join(self.manager.cdir(c.id), "upper"), c.id
            )
        except BaseException:
            if self.opts.force_rm:
                self._remove_container(c.id)
            raise
        if self.opts.remove or self.opts.force_rm:
            self._remove_container(c.id)
        return step

    def _remove_container(self, cid: str) -> None:
        self._say(f"Removing intermediate container {short_id(cid)}")
        self.manager.remove(cid, force=True, volumes=True)

    def _use_cache(self, n: int, inst: Instruction, image_id: str) -> StepResult:
        self.state.image = self.store.get_image(image_id)
        return StepResult(n, inst.original, image_id, cached=True)

    def _new_image(
        self, n: int, inst: Instruction, container_config: dict, upper: str, container_id: str
    ) -> StepResult:
        parent = self.state.image
        parent_chain = parent.layers[-1] if parent and parent.layers else ""
        layer = layer_from_upper(self.store, upper, parent_chain, self.work_dir)
        history_entry: dict = {"created": now_rfc3339nano()}
        if self.state.author:
            history_entry["author"] = self.state.author
        history_entry["created_by"] = " ".join(container_config["Cmd"])
        if layer is None:
            history_entry["empty_layer"] = True
        rec = put_child_image(
            self.store,
            parent,
            config=dict(self.state.config, Image=self.state.image_id),
            container_config=container_config,
            container_id=container_id,
            layer=layer,
            history_entry=history_entry,
            author=self.state.author,
        )
        self.state.image = rec
        return StepResult(n, inst.original, rec.id, layer_size=layer.size if layer else None)

    # -- RUN

    def _do_run(self, n: int, inst: Instruction) -> StepResult:
        if self.state.image is None:
            raise BuildError(
                "Please provide a source image with `from` prior to run", line=inst.line
            )
        cmd = self._cmd_line(inst)
        if not cmd:
            raise parse_error(inst.line, "RUN requires at least one argument")
        env_keys = {e.split("=", 1)[0] for e in self.state.config.get("Env") or []}
        arg_env = sorted(f"{k}={v}" for k, v in self._arg_values().items() if k not in env_keys)
        saved_cmd = [f"|{len(arg_env)}", *arg_env, *cmd] if arg_env else cmd
        container_config = self._probe_config(saved_cmd)
        cached = self._probe(container_config)
        if cached:
            return self._use_cache(n, inst, cached)
        c = self.manager.create(
            ContainerSpec(
                image=self.state.image_id,
                cmd=cmd,
                entrypoint=[],
                env=arg_env,
                workdir=self.state.config.get("WorkingDir") or "",
                user=self.state.config.get("User") or "",
                network=self._network(),
                extra_hosts=list(self.opts.extra_hosts),
            )
        )
        self._say(f" ---> Running in {short_id(c.id)}")
        ok = False
        try:
            try:
                self.manager.start(c.id)
            except ContainerStartError as e:
                raise BuildError(str(e), exit_code=e.exit_code, line=inst.line) from e
            for stream, text, _time in self.manager.logs(c.id, follow=True):
                (self.err_out if stream == "stderr" else self.out)(text)
            code = self.manager.wait(c.id)
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(cmd)}' returned a non-zero code: {code}",
                    exit_code=code,
                    line=inst.line,
                )
            step = self._new_image(
                n, inst, container_config, os.path.join(self.manager.cdir(c.id), "upper"), c.id
            )
            ok = True
        finally:
            if (ok and self.opts.remove) or self.opts.force_rm:
                self._remove_container(c.id)
        return step

    def _network(self) -> str:
        """The RUN containers' network: --network as given (bridge, host, none); the
        default ("" or "default") is the default bridge, as dockerd's."""
        network = self.opts.network
        return "bridge" if network in ("", "default") else network

    # -- COPY and ADD

    def _do_copy(self, n: int, inst: Instruction) -> StepResult:
        return self._copy(n, inst, add=False)

    def _do_add(self, n: int, inst: Instruction) -> StepResult:
        return self._copy(n, inst, add=True)

    def _copy(self, n: int, inst: Instruction, *, add: bool) -> StepResult:
        with contextlib.ExitStack() as stack:
            source = self.context
            if inst.flags.get("from"):
                source = self._from_source(inst, stack)
            return self._copy_from(n, inst, add=add, source=source, stack=stack)

    def _from_source(self, inst: Instruction, stack: contextlib.ExitStack) -> ImageSource:
        """``COPY --from=<stage name|stage index|image>``, mounted for the step (moby's
        getImageMount: a stage by name, then by index, else an image, pulled when
        missing or with --pull)."""
        value = inst.flags["from"]
        image_id = self.stages.get(value.lower())
        if image_id is None and re.fullmatch(r"-?\d+", value):
            index = int(value)
            if index == len(self.stage_images):
                raise BuildError(
                    f"invalid from flag value {value}: refers to current build stage",
                    line=inst.line,
                )
            if index < 0 or index > len(self.stage_images):
                raise BuildError(
                    f"invalid from flag value {value}: index out of bounds", line=inst.line
                )
            image_id = self.stage_images[index]
        if image_id is not None:
            rec = self.store.get_image(image_id) if image_id else None
        else:
            try:
                rec = self._base_image(value)
            except DockwebError as e:
                raise BuildError(f"invalid from flag value {value}: {e}", line=inst.line) from e
        merged, _upper = stack.enter_context(rw_layer(self.store, rec, self.work_dir))
        return ImageSource(merged)

    def _copy_from(
        self,
        n: int,
        inst: Instruction,
        *,
        add: bool,
        source: BuildContext | ImageSource,
        stack: contextlib.ExitStack,
    ) -> StepResult:
        name = inst.name
        words = inst.json_args if inst.json_args is not None else inst.rest.split()
        words = [self._expand(w, inst) for w in words]
        if len(words) < 2:
            raise parse_error(
                inst.line,
                f"{name} requires at least two arguments, but only one was provided. "
                "Destination could not be determined",
            )
        sources, dest = words[:-1], words[-1]
        if len(sources) > 1 and not dest.endswith("/"):
            raise BuildError(
                f"When using {name} with more than one source file, the destination must be "
                "a directory and end with a /",
                line=inst.line,
            )
        infos: list[tuple[str, str]] = []  # (source path, hash)
        origins: list[BuildContext | ImageSource] = []  # where each of infos is
        for src in sources:
            if re.match(r"^https?://", src):
                if not add:
                    raise BuildError(f"{name} failed: source can't be a URL for {name}")
                downloads = stack.enter_context(_tempdir(self.work_dir))
                infos.append(_download(src, downloads, dest))
                origins.append(ImageSource(downloads))
                continue
            found = self._sources(name, src, source)
            infos.extend(found)
            origins.extend([source] * len(found))
        src_hash = (
            infos[0][1]
            if len(infos) == 1
            else "multi:" + hashlib.sha256(",".join(h for _, h in infos).encode()).hexdigest()
        )
        shell = list(self.state.config.get("Shell") or DEFAULT_SHELL)
        # moby's performCopy comment, --chown glued to the hash as Docker writes it; being in
        # the Cmd, it is part of the cache key
        chown = self._expand(inst.flags.get("chown", ""), inst)
        chown_comment = f"--chown={chown}" if chown else ""
        container_config = self._probe_config(
            [*shell, f"#(nop) {name} {chown_comment}{src_hash} in {dest} "]
        )
        cached = self._probe(container_config)
        if cached:
            return self._use_cache(n, inst, cached)
        if not dest.startswith("/"):
            trailing = dest.endswith("/") or dest in (".", "./")
            dest = os.path.join("/", self.state.config.get("WorkingDir") or "/", dest)
            dest = os.path.normpath(dest) + ("/" if trailing else "")
        with rw_layer(self.store, self.state.image, self.work_dir) as (merged, upper):
            uid, gid = self._chown(merged, inst)
            # moby's preserveOwnership: COPY --from without --chown keeps the files' owners
            keep_owners = bool(inst.flags.get("from")) and not inst.flags.get("chown")
            for (rel, _digest), origin in zip(infos, origins, strict=True):
                self._copy_one(
                    merged,
                    rel,
                    dest,
                    uid,
                    gid,
                    # remote files and --from sources are never unpacked (moby's copier)
                    add=add and origin is self.context,
                    many=len(infos) > 1,
                    source=origin,
                    keep_owners=keep_owners,
                )
        return self._new_image(n, inst, container_config, upper, container_id="")

    def _sources(
        self, name: str, src: str, source: BuildContext | ImageSource
    ) -> list[tuple[str, str]]:
        if isinstance(source, ImageSource):
            # an image's tree: the path resolved inside it, as moby's copier for an image
            rel = os.path.normpath("/" + src).lstrip("/")
            if any(ch in rel for ch in "*?["):
                matches = source.glob(rel)
                if not matches:
                    raise BuildError(f"{name} failed: no source files were specified")
                return [(p, source.hash(p)) for p in matches]
            real = source.resolve(rel)
            if not source.has(real):
                raise BuildError(f"{name} failed: stat {rel}: file does not exist")
            return [(real, source.hash(real))]
        if self.context.root is None:
            raise BuildError(f"{name} failed: no build context: upload one to copy {src}")
        rel = os.path.normpath(src.lstrip("/")) if src.strip("/") else "."
        if rel == ".." or rel.startswith("../"):
            raise BuildError(f"{name} failed: forbidden path outside the build context: {src} ()")
        if any(ch in rel for ch in "*?["):
            matches = [p for p in self.context.paths if fnmatch.fnmatchcase(p, rel)]
            matches = [p for p in matches if p.count("/") == rel.count("/")]
            if not matches:
                raise BuildError(f"{name} failed: no source files were specified")
            return [(p, self.context.hash(p)) for p in sorted(matches)]
        if not self.context.has(rel) or not os.path.lexists(self.context.abs(rel)):
            raise BuildError(
                f"{name} failed: file not found in build context or excluded by "
                f".dockerignore: stat {src}: file does not exist"
            )
        return [(rel, self.context.hash(rel))]

    def _chown(self, rootfs: str, inst: Instruction) -> tuple[int, int]:
        spec = self._expand(inst.flags.get("chown", ""), inst)
        if not spec:
            return 0, 0
        # moby's parseChownFlag: a lone user names the group too ("1000" is 1000:1000)
        user, _, group = spec.partition(":")
        try:
            u = oci.resolve_user(rootfs, f"{user}:{group or user}")
        except ContainerStartError as e:
            raise BuildError(
                f"unable to convert uid/gid chown string to host mapping: {e}", line=inst.line
            ) from None
        return u.uid, u.gid

    def _copy_one(
        self,
        rootfs: str,
        rel: str,
        dest: str,
        uid: int,
        gid: int,
        *,
        add: bool,
        many: bool,
        source: BuildContext | ImageSource | None = None,
        keep_owners: bool = False,
    ) -> None:
        source = source or self.context
        src = source.abs(rel)
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            # moby's copyDirectory: missing directories are made root's (CopyWithTar), then
            # fixPermissions chowns the destination itself only if it was new
            last_owner = (0, 0) if keep_owners else (uid, gid)
            target = _mkdir_in(rootfs, dest, 0, 0, last_owner=last_owner)
            self._copy_tree(rel, target, uid, gid, source, keep_owners)
            return
        if add and stat.S_ISREG(st.st_mode) and _is_archive(src):
            # moby's UntarPath: the tar's own owners, modes and times; --chown plays no part
            target = _mkdir_in(rootfs, dest, 0, 0)
            with _decompressed(src) as stream:
                try:
                    untar(stream, target)
                except LayerError as e:
                    raise BuildError(f"ADD failed: {rel}: {e}") from e
            return
        # moby's copyFile: missing parents are the chown's owner's, root's when the owners
        # are kept (os.MkdirAll)
        if dest.endswith("/") or many or os.path.isdir(oci.in_root(rootfs, dest)):
            target_dir = _mkdir_in(rootfs, dest, uid, gid)
            target = os.path.join(target_dir, os.path.basename(rel))
        else:
            parent = _mkdir_in(rootfs, os.path.dirname(dest.rstrip("/")) or "/", uid, gid)
            target = os.path.join(parent, os.path.basename(dest.rstrip("/")))
        if keep_owners:
            uid, gid = st.st_uid, st.st_gid
        _copy_entry(src, target, uid, gid)

    def _copy_tree(
        self,
        rel: str,
        target: str,
        uid: int,
        gid: int,
        source: BuildContext | ImageSource,
        keep_owners: bool = False,
    ) -> None:
        for child in source.children(rel):
            src = source.abs(child)
            dst = os.path.join(target, os.path.basename(child))
            st = os.lstat(src)
            owner = (st.st_uid, st.st_gid) if keep_owners else (uid, gid)
            if stat.S_ISDIR(st.st_mode):
                if not os.path.isdir(dst):
                    if os.path.lexists(dst):
                        os.unlink(dst)
                    os.mkdir(dst)
                os.lchown(dst, *owner)
                os.chmod(dst, stat.S_IMODE(st.st_mode))
                self._copy_tree(child, dst, uid, gid, source, keep_owners)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            else:
                _copy_entry(src, dst, *owner)


_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


def _stage_name(inst: Instruction) -> str:
    """moby's parseBuildStageName: ``FROM image AS name`` (lower-cased) or ""."""
    args = inst.rest.split()
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise parse_error(
                inst.line,
                f'invalid name for build stage: "{args[2]}", name can\'t start with a number '
                "or contain symbols",
            )
        return name
    if len(args) != 1:
        raise parse_error(inst.line, "FROM requires either one or three arguments")
    return ""


@contextlib.contextmanager
def _tempdir(work_dir: str) -> Iterator[str]:
    path = os.path.join(work_dir, f"dl-{secrets.token_hex(4)}")
    os.makedirs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _download(url: str, into: str, dest: str) -> tuple[str, str]:
    """``ADD <url>`` as dockerd's copier downloads it (by the daemon itself, not in a
    container): the file named after Content-Disposition's filename or the URL's last path
    part, mode 0600, its mtime Last-Modified's (else the epoch), never unpacked; the cache
    key is its tarsum without a ``file:`` prefix. Only loopback hosts are fetched: dockweb
    has no network beyond loopback. Returns (file name, tarsum)."""
    import email.utils
    import urllib.error
    import urllib.parse
    import urllib.request

    parsed = urllib.parse.urlsplit(url)
    if (parsed.hostname or "") not in _LOOPBACK_HOSTS:
        raise BuildError(
            f"ADD failed: remote URL {url} refused: dockweb fetches ADD URLs only from "
            "loopback (127.0.0.1, localhost, ::1); download the file into the build context "
            "and ADD it from there"
        )

    class LoopbackRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            host = urllib.parse.urlsplit(newurl).hostname or ""
            if host not in _LOOPBACK_HOSTS:
                raise BuildError(
                    f"ADD failed: remote URL {url} redirects to {newurl}, which is not on "
                    "loopback: refused"
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), LoopbackRedirects)
    try:
        resp = opener.open(url, timeout=30)
    except urllib.error.HTTPError as e:
        body = e.read(512).decode("utf-8", "replace")
        raise BuildError(f"failed to GET {url} with status {e.code} {e.reason}: {body}") from None
    except (urllib.error.URLError, OSError) as e:
        raise BuildError(f"Get {url}: {getattr(e, 'reason', e)}") from None
    with resp:
        # moby's getFilenameForDownload: the URL's last path part, else
        # Content-Disposition's filename, else "__unnamed__" (refused for a directory)
        filename = ""
        if parsed.path and not parsed.path.endswith("/"):
            filename = os.path.basename(parsed.path)
        if not filename:
            m = re.search(r'filename="?([^";]+)"?', resp.headers.get("Content-Disposition") or "")
            if m and not m.group(1).endswith("/"):
                filename = os.path.basename(m.group(1).strip())
        if not filename or filename in (".", ".."):
            if dest.endswith("/"):
                raise BuildError(f"cannot determine filename for source {url}")
            filename = "__unnamed__"
        target = os.path.join(into, filename)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
        mtime = 0
        last_mod = resp.headers.get("Last-Modified")
        if last_mod:
            with contextlib.suppress(TypeError, ValueError):
                mtime = int(email.utils.parsedate_to_datetime(last_mod).timestamp())
        os.chmod(target, 0o600)
        os.utime(target, (mtime, mtime))
    return filename, file_tarsum(target, filename)


def _duration_ns(text: str, line: int) -> int:
    total = 0.0
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise parse_error(line, f'time: invalid duration "{text}"')
    for value, unit in parts:
        total += float(value) * units[unit]
    return int(total * 1e9)


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _mkdir_in(
    rootfs: str, path: str, uid: int, gid: int, *, last_owner: tuple[int, int] | None = None
) -> str:
    """Make ``path`` (and missing parents, owned by uid:gid, 0755) inside ``rootfs``, following
    symlinks inside it; returns its host path. ``last_owner``: the owner of ``path`` itself
    when it is made here."""
    current = "/"
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        host = oci.in_root(rootfs, current)
        if not os.path.isdir(host):
            if os.path.lexists(host):
                raise BuildError(f"mkdir {current}: not a directory")
            os.mkdir(host, 0o755)
            owner = last_owner if last_owner and i == len(parts) - 1 else (uid, gid)
            os.lchown(host, *owner)
    return oci.in_root(rootfs, path)


def compression(magic: bytes) -> str:
    """What moby's DetectCompression sees in a stream's first 6 bytes: "gzip", "bzip2",
    "xz", or "" (none)."""
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic.startswith(b"BZh"):
        return "bzip2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return ""


@contextlib.contextmanager
def _decompressed(path: str) -> Iterator:
    """The file as moby's DecompressStream gives it: gzip, bzip2 and xz undone."""
    with open(path, "rb") as f:
        kind = compression(f.read(6))
        f.seek(0)
        opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}.get(kind)
        if opener is None:
            yield f
        else:
            with opener(f) as stream:
                yield stream


def _copy_entry(src: str, dst: str, uid: int, gid: int) -> None:
    st = os.lstat(src)
    if os.path.isdir(dst) and not os.path.islink(dst):
        shutil.rmtree(dst)
    elif os.path.lexists(dst):
        os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    else:
        return  # devices, fifos and sockets of a context are not copied
    os.lchown(dst, uid, gid)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def build(
    store: Store,
    manager,
    options: BuildOptions,
    *,
    on_output: Output | None = None,
    pull: Callable[[str, Output], None] | None = None,
    on_stderr: Output | None = None,
    on_stage: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    """Build ``options.dockerfile`` as classic ``docker build``; returns the final image.

    ``manager`` is the ContainerManager that runs RUN steps (network ``none``). ``pull(ref,
    on_output)`` fetches a FROM image missing from the store (None: ImageNotFound). What a
    RUN step writes to its stderr goes to ``on_stderr`` (default: ``on_output``);
    ``on_stage(image_id)`` is called as each stage ends (dockerd's ``aux`` ID message);
    once ``cancel`` is set, the build stops before its next step ("Build cancelled").
    Raises BuildError with Docker's message (``.line`` the Dockerfile line, ``.exit_code``
    a failed RUN's code). Images of the steps that succeeded stay in the store, as Docker's
    do.
    """
    return Builder(
        store,
        manager,
        options,
        on_output=on_output,
        pull=pull,
        on_stderr=on_stderr,
        on_stage=on_stage,
        cancel=cancel,
    ).run()


# -- commit -----------------------------------------------------------------------------


def commit(
    store: Store,
    manager,
    ref: str,
    repo_tag: str = "",
    *,
    message: str = "",
    author: str = "",
    changes: list[str] | tuple[str, ...] = (),
    pause: bool = True,
) -> str:
    """``docker commit``: the container's writable layer becomes a layer on top of its image.

    A running container is paused while its layer is read (unless ``pause`` is False) and
    resumed afterwards. ``changes`` are Dockerfile instructions applied to the config
    (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL).
    Returns the new image ID; ``repo_tag`` (optional) is pointed at it.
    """
    c = manager.get(ref)
    target = None
    if repo_tag:
        target = refs.parse_normalized_named(repo_tag)
        if target.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
    parent = store.get_image(c.image_id)
    image_cfg = parent.config.get("config") or {}
    config = dict(image_cfg)
    config["Hostname"] = c.hostname
    config["Env"] = oci.merge_env(image_cfg.get("Env") or [f"PATH={oci.DEFAULT_PATH}"], c.spec.env)
    entrypoint = (
        c.spec.entrypoint if c.spec.entrypoint is not None else image_cfg.get("Entrypoint") or []
    )
    config["Entrypoint"] = list(entrypoint) or None
    config["Cmd"] = [c.path, *c.args][len(entrypoint) :] or None
    if c.spec.workdir:
        config["WorkingDir"] = c.spec.workdir
    if c.spec.user:
        config["User"] = c.spec.user
    config["Tty"] = c.spec.tty
    config["OpenStdin"] = c.spec.interactive
    if c.spec.labels:
        config["Labels"] = {**(image_cfg.get("Labels") or {}), **c.spec.labels}
    config["Image"] = c.image
    container_config = dict(config)
    if changes:
        config = _apply_changes(store, config, changes)
    paused = False
    if pause and c.status is Status.RUNNING:
        manager.pause(c.id)
        paused = True
    work_dir = os.path.join(store.root, "builds", secrets.token_hex(8))
    os.makedirs(work_dir)
    try:
        parent_chain = parent.layers[-1] if parent.layers else ""
        layer = layer_from_upper(
            store, os.path.join(manager.cdir(c.id), "upper"), parent_chain, work_dir
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(work_dir))
        if paused:
            with contextlib.suppress(DockwebError):
                manager.unpause(c.id)
    entry: dict = {"created": now_rfc3339nano()}
    if author:
        entry["author"] = author
    entry["created_by"] = " ".join([c.path, *c.args])
    if message:
        entry["comment"] = message
    if layer is None:
        entry["empty_layer"] = True
    rec = put_child_image(
        store,
        parent,
        config=config,
        container_config=container_config,
        container_id=c.id,
        layer=layer,
        history_entry=entry,
        author=author,
        comment=message,
    )
    if target is not None:
        store.add_reference(target, rec.id, force=True)
    return rec.id


def _apply_changes(store: Store, config: dict, changes) -> dict:
    """Apply ``--change`` instructions to a config with the builder's own dispatchers,
    without committing anything (moby's ``disableCommit``)."""
    allowed = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME",
               "WORKDIR", "STOPSIGNAL"}  # fmt: skip
    builder = Builder(store, None, BuildOptions(dockerfile=""))
    builder.disable_commit = True
    builder.state.config = dict(config)
    for text in changes:
        for inst in parse_dockerfile(text)[0]:
            if inst.name not in allowed:
                raise InvalidArgument(f"{inst.name.lower()} is not a valid change command")
            builder._dispatch(0, inst)
    return builder.state.config
