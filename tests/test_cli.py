"""The `dockweb` command, run as a person runs it: Docker's output, line for line."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.support import images as im
from tests.support.cli import cli_env, run_dockweb

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


@pytest.fixture(scope="module")
def pushed(registry):
    a, b = im.push_shared_base_pair(registry.host, "cli")
    return {"a": (f"{registry.host}/cli/a:1", a), "b": (f"{registry.host}/cli/b:1", b)}


def test_it_pulls_with_dockers_plain_output(dockweb, registry, pushed):
    ref, image = pushed["a"]
    out = dockweb("pull", ref).stdout.splitlines()
    ids = [la.digest.split(":")[1][:12] for la in image.layers]
    assert out[0] == "1: Pulling from cli/a"
    for layer_id in ids:
        assert f"{layer_id}: Pulling fs layer" in out
        assert f"{layer_id}: Pull complete" in out
    assert out[-3:] == [
        f"Digest: {image.manifest_digest}",
        f"Status: Downloaded newer image for {ref}",
        ref,
    ]


def test_it_says_an_image_already_here_is_up_to_date(dockweb, registry, pushed):
    ref, image = pushed["a"]
    dockweb("pull", "-q", ref)
    out = dockweb("pull", ref).stdout.splitlines()
    assert out == [
        "1: Pulling from cli/a",
        f"Digest: {image.manifest_digest}",
        f"Status: Image is up to date for {ref}",
        ref,
    ]


def test_it_names_the_default_tag(dockweb, registry, pushed):
    proc = dockweb("pull", f"{registry.host}/cli/untagged", check=False)
    assert proc.stdout == "Using default tag: latest\n"  # nothing else: the tag is unknown
    assert proc.stderr == (
        f"Error response from daemon: manifest for {registry.host}/cli/untagged:latest "
        "not found: manifest unknown: manifest unknown\n"
    )


def test_it_pulls_quietly(dockweb, pushed):
    ref, _ = pushed["a"]
    assert dockweb("pull", "-q", ref).stdout == ref + "\n"


def test_it_lists_images_in_dockers_columns(dockweb, registry, pushed):
    ref_a, a = pushed["a"]
    ref_b, b = pushed["b"]
    dockweb("pull", "-q", ref_a)
    dockweb("pull", "-q", ref_b)
    lines = dockweb("images").stdout.splitlines()
    assert re.match(r"^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$", lines[0])
    # the tabwriter pads every column to its widest cell plus 3 spaces
    header = lines[0]
    repo_width = header.index("TAG")
    assert repo_width == len(f"{registry.host}/cli/a") + 3
    rows = sorted(line.split() for line in lines[1:])
    short_a = a.image_id.split(":")[1][:12]
    assert rows[0][:3] == [f"{registry.host}/cli/a", "1", short_a]
    assert rows[0][-1].endswith("MB")
    quiet = dockweb("images", "-q").stdout.split()
    assert sorted(quiet) == sorted([short_a, b.image_id.split(":")[1][:12]])


def test_it_lists_digests_and_formats(dockweb, registry, pushed):
    ref, image = pushed["a"]
    dockweb("pull", "-q", ref)
    out = dockweb("images", "--digests", "--no-trunc").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    assert image.manifest_digest in out[1] and image.image_id in out[1]
    fmt = dockweb("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert fmt == f"{registry.host}/cli/a:1 {image.image_id.split(':')[1][:12]}\n"
    js = json.loads(dockweb("images", "--format", "json").stdout.splitlines()[0])
    assert js["Repository"] == f"{registry.host}/cli/a" and js["Tag"] == "1"


def test_it_filters_dangling_and_references(dockweb, registry, pushed):
    ref, image = pushed["a"]
    dockweb("pull", "-q", ref)
    assert dockweb("images", "-q", "-f", "dangling=true").stdout == ""
    assert dockweb("images", "-q", "-f", f"reference={registry.host}/cli/*").stdout.strip()
    assert dockweb("images", "-q", "-f", "reference=nomatch*").stdout == ""
    bad = dockweb("images", "-f", "color=red", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "Error response from daemon: Invalid filter 'color'"


def test_it_prints_untagged_then_deleted(dockweb, registry, pushed):
    ref, image = pushed["a"]
    dockweb("pull", "-q", ref)
    dockweb("tag", ref, "local/copy:v1")
    assert dockweb("rmi", ref).stdout == (
        f"Untagged: {ref}\nUntagged: {registry.host}/cli/a@{image.manifest_digest}\n"
    )
    out = dockweb("rmi", "local/copy:v1").stdout.splitlines()
    assert out[0] == "Untagged: local/copy:v1"
    assert out[1] == f"Deleted: {image.image_id}"
    assert out[2:] == [f"Deleted: {c}" for c in reversed(image.chain_ids)]
    assert dockweb("images", "-q").stdout == ""


def test_it_refuses_a_bad_name_or_all_tags_alike_for_pull_and_push(dockweb):
    outputs = {}
    for command in ("pull", "push"):
        bad = dockweb(command, "Busybox", check=False)
        every = dockweb(command, "--all-tags", "busybox", check=False)
        outputs[command] = (bad.returncode, bad.stdout, bad.stderr, every.returncode, every.stderr)
    assert outputs["pull"] == outputs["push"]
    assert outputs["pull"][:3] == (
        1,
        "",
        "invalid reference format: repository name must be lowercase\n",
    )
    assert outputs["pull"][3] != 0 and "--all-tags is not supported" in outputs["pull"][4]


def test_it_reports_missing_images_like_docker(dockweb):
    proc = dockweb("rmi", "nope", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "Error: No such image: nope\n"
    forced = dockweb("rmi", "-f", "nope", check=False)
    assert forced.returncode == 0  # -f tolerates missing images, as docker does


def test_it_refuses_invalid_references(dockweb):
    proc = dockweb("pull", "Busybox", check=False)
    assert proc.returncode == 1
    assert "invalid reference format: repository name must be lowercase" in proc.stderr


def test_it_inspects_and_shows_history(dockweb, pushed):
    ref, image = pushed["a"]
    dockweb("pull", "-q", ref)
    data = json.loads(dockweb("image", "inspect", ref).stdout)
    assert data[0]["Id"] == image.image_id
    assert data[0]["RootFS"]["Layers"] == image.diff_ids
    assert data[0]["Config"]["Cmd"] == ["sh"]
    assert dockweb("image", "inspect", "--format", "{{.Id}}", ref).stdout == image.image_id + "\n"
    hist = dockweb("history", ref).stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"]
    assert len(hist) == 1 + len(image.layers)
    assert hist[1].startswith(image.image_id.split(":")[1][:12])


def test_it_prints_what_inspect_found_then_the_names_it_did_not(dockweb, pushed):
    ref, image = pushed["a"]
    dockweb("pull", "-q", ref)
    both = dockweb("image", "inspect", "--format", "{{.Id}}", ref, "nope", check=False)
    assert (both.returncode, both.stdout, both.stderr) == (
        1,
        image.image_id + "\n",
        "Error: No such image: nope\n",
    )
    none = dockweb("image", "inspect", "nope", "nada", check=False)
    assert (none.returncode, none.stdout, none.stderr) == (
        1,
        "[]\n",
        "Error: No such image: nope\nError: No such image: nada\n",
    )


def test_it_mounts_the_merged_root_filesystem(dockweb, pushed):
    ref, _ = pushed["b"]
    dockweb("pull", "-q", ref)
    path = dockweb("image", "mount", ref).stdout.strip()
    try:
        assert open(os.path.join(path, "shared/which")).read() == "b\n"
        assert open(os.path.join(path, "shared/common")).read() == "common\n"
        assert os.path.exists(os.path.join(path, "bin/busybox"))
    finally:
        dockweb("image", "unmount", ref)
    assert not os.path.ismount(path)


def test_it_pushes_with_dockers_output_and_pulls_back(dockweb, registry, pushed, tmp_path):
    ref, image = pushed["a"]
    dockweb("pull", "-q", ref)
    target = f"{registry.host}/cli/pushed:v1"
    dockweb("tag", ref, target)
    out = dockweb("push", target).stdout.splitlines()
    assert out[0] == f"The push refers to repository [{registry.host}/cli/pushed]"
    digest_line = out[-1]
    assert digest_line.startswith("v1: digest: sha256:") and " size: " in digest_line
    again = dockweb("push", target).stdout.splitlines()
    assert any(line.endswith(": Layer already exists") for line in again)
    # a fresh store pulls back the very same image
    env = cli_env(tmp_path, store="other", data=tmp_path / "d2")
    proc = run_dockweb(env, "pull", "-q", target)
    assert proc.returncode == 0, proc.stderr
    ids = run_dockweb(env, "images", "-q", "--no-trunc").stdout.split()
    assert ids == [image.image_id]


@pytest.mark.parametrize(
    ("argv", "code", "stderr"),
    [
        (["stop"], 1, '"dockweb stop" requires at least 1 argument.\n'
                      "See 'dockweb stop --help'.\n\n"
                      "Usage:  dockweb stop [OPTIONS] CONTAINER [CONTAINER...]\n\n"
                      "Stop one or more running containers\n"),
        (["logs", "a", "b"], 1, '"dockweb logs" requires exactly 1 argument.\n'
                                "See 'dockweb logs --help'.\n\n"
                                "Usage:  dockweb logs [OPTIONS] CONTAINER\n\n"
                                "Fetch the logs of a container\n"),
        (["images", "a", "b"], 1, '"dockweb images" requires at most 1 argument.\n'
                                  "See 'dockweb images --help'.\n\n"
                                  "Usage:  dockweb images [OPTIONS] [REPOSITORY[:TAG]]\n\n"
                                  "List images\n"),
        (["port"], 1, '"dockweb port" requires at least 1 and at most 2 arguments.\n'
                      "See 'dockweb port --help'.\n\n"
                      "Usage:  dockweb port CONTAINER [PRIVATE_PORT[/PROTO]]\n\n"
                      "List port mappings or a specific mapping for the container\n"),
        (["system", "df", "x"], 1, '"dockweb system df" accepts no arguments.\n'
                                   "See 'dockweb system df --help'.\n\n"
                                   "Usage:  dockweb system df [OPTIONS]\n\n"
                                   "Show docker disk usage\n"),
        (["run"], 1, '"dockweb run" requires at least 1 argument.\n'
                     "See 'dockweb run --help'.\n\n"
                     "Usage:  dockweb run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                     "Run a command in a new container\n"),
        (["container", "ls", "--bogus"], 125,
         "unknown flag: --bogus\nSee 'dockweb container ls --help'.\n"),
        (["ps", "-az"], 125, "unknown shorthand flag: 'z' in -az\nSee 'dockweb ps --help'.\n"),
        (["run", "--bogus", "x"], 125, "unknown flag: --bogus\nSee 'dockweb run --help'.\n"),
    ],
)
def test_it_reports_usage_errors_as_docker(dockweb, argv, code, stderr):
    proc = dockweb(*argv, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, "", stderr)


def test_it_tells_its_version_and_the_engines_state_as_docker(dockweb):
    from importlib.metadata import version

    assert dockweb("version", "--format", "{{.Server.Version}}").stdout == version("dockweb") + "\n"
    lines = dockweb("version").stdout.splitlines()
    assert lines[0] == "Client:" and "Server:" in lines and " Engine:" in lines
    info = json.loads(dockweb("info", "--format", "{{json .}}").stdout)
    assert (info["Containers"], info["Images"], info["Driver"], info["OSType"]) == (
        0, 0, "overlay", "linux"
    )
    assert info["DefaultRuntime"] in info["Runtimes"] and info["NCPU"] >= 1
    text = dockweb("system", "info").stdout
    assert " Containers: 0\n  Running: 0\n" in text and " Storage Driver: overlay\n" in text
    proc = dockweb("info", "--format", "{{.Nope}}", check=False)
    assert proc.stderr.endswith("can't evaluate field Nope in type types.Info\n")
