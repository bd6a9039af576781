"""Docker's rules written once: image-row grouping (docker/cli's imageFormat) and which
images are listed, dangling or prunable (moby's image list and prune). Pure functions."""

from __future__ import annotations

from dockweb.docker import ps
from dockweb.docker.images import group_references, image_rows, summary_references
from dockweb.runtime import imageconfig, imagelist
from dockweb.runtime.containers.state import Status, status_text

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_it_groups_an_image_without_references_as_one_none_row():
    assert group_references([], [], tag_digests=True, digest_rows=True) == [
        ("<none>", "<none>", "<none>")
    ]


def test_it_groups_a_row_per_tag_without_digests_unless_asked():
    tags = [("busybox", "1"), ("busybox", "latest"), ("team/app", "v2")]
    digests = [("busybox", D1)]
    assert group_references(tags, digests, tag_digests=False, digest_rows=False) == [
        ("busybox", "1", "<none>"),
        ("busybox", "latest", "<none>"),
        ("team/app", "v2", "<none>"),
    ]


def test_it_gives_each_tag_row_its_repository_digests_when_asked():
    tags = [("busybox", "1"), ("team/app", "v2")]
    digests = [("busybox", D1), ("busybox", D2)]
    assert group_references(tags, digests, tag_digests=True, digest_rows=False) == [
        ("busybox", "1", D1),
        ("busybox", "1", D2),
        ("team/app", "v2", "<none>"),
    ]


def test_it_shows_digest_only_repositories_per_digest_only_with_digest_rows():
    digests = [("busybox", D1), ("busybox", D2)]
    assert group_references([], digests, tag_digests=True, digest_rows=False) == [
        ("busybox", "<none>", "")
    ]
    assert group_references([], digests, tag_digests=False, digest_rows=True) == [
        ("busybox", "<none>", D1),
        ("busybox", "<none>", D2),
    ]


def test_it_reads_the_none_markers_and_empty_lists_as_no_references():
    marked = {"RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]}
    assert summary_references(marked) == ([], [])
    assert summary_references({"RepoTags": [], "RepoDigests": []}) == ([], [])
    tagged = {"RepoTags": ["busybox:1"], "RepoDigests": [f"busybox@{D1}"]}
    assert summary_references(tagged) == ([("busybox", "1")], [("busybox", D1)])


def test_it_adds_digests_to_tag_rows_when_the_format_names_digest():
    summary = {
        "Id": D2, "RepoTags": ["busybox:1"], "RepoDigests": [f"busybox@{D1}"],
        "Created": 0, "Size": 1, "VirtualSize": 1,
    }  # fmt: skip
    plain = image_rows([summary], digests=False, trunc=True)
    assert [(r["Repository"], r["Tag"], r["Digest"]) for r in plain] == [("busybox", "1", "<none>")]
    named = image_rows([summary], digests=False, trunc=True, fmt="{{.Digest}}")
    assert [r["Digest"] for r in named] == [D1]


def test_it_calls_dangling_an_untagged_head_only():
    assert imagelist.is_dangling(tagged=False, has_child=False)
    assert not imagelist.is_dangling(tagged=True, has_child=False)
    assert not imagelist.is_dangling(tagged=False, has_child=True)


def test_it_calls_intermediate_an_unreferenced_parent_only():
    assert imagelist.is_intermediate(referenced=False, has_child=True)
    assert not imagelist.is_intermediate(referenced=True, has_child=True)
    assert not imagelist.is_intermediate(referenced=False, has_child=False)


def test_it_hides_intermediate_images_without_all():
    fact = {"tagged": False, "referenced": False, "has_child": True}
    assert not imagelist.listed(**fact)
    assert imagelist.listed(**fact, all=True)
    assert imagelist.listed(tagged=False, referenced=False, has_child=False)


def test_it_lists_untagged_heads_for_dangling_true_and_hides_them_for_false():
    digest_only = {"tagged": False, "referenced": True, "has_child": False}
    none = {"tagged": False, "referenced": False, "has_child": False}
    tagged = {"tagged": True, "referenced": True, "has_child": False}
    assert imagelist.listed(**digest_only, dangling=True)
    assert imagelist.listed(**none, dangling=True)
    assert not imagelist.listed(**tagged, dangling=True)
    assert not imagelist.listed(tagged=False, referenced=True, has_child=True, dangling=True)
    assert not imagelist.listed(**none, dangling=False)
    assert imagelist.listed(**digest_only, dangling=False)


def test_it_hides_images_without_matching_references_under_a_reference_filter():
    assert not imagelist.listed(
        tagged=False, referenced=False, has_child=False, reference_filter=True
    )
    assert imagelist.listed(tagged=True, referenced=True, has_child=False, reference_filter=True)


def test_it_never_prunes_intermediate_images_and_keeps_tagged_ones_unless_all():
    assert not imagelist.prune_candidate(
        tagged=False, referenced=False, has_child=True, dangling_only=False
    )
    assert imagelist.prune_candidate(
        tagged=False, referenced=True, has_child=False, dangling_only=True
    )
    assert not imagelist.prune_candidate(
        tagged=True, referenced=True, has_child=False, dangling_only=True
    )
    assert imagelist.prune_candidate(
        tagged=True, referenced=True, has_child=False, dangling_only=False
    )
    assert not imagelist.prune_candidate(
        tagged=False, referenced=True, has_child=True, dangling_only=True
    )


def test_it_counts_shared_size_from_layers_other_images_use():
    users = imagelist.layer_users([["a", "b"], ["a", "c"], ["d"]])
    assert users == {"a": 2, "b": 1, "c": 1, "d": 1}
    sizes = {"a": 100, "b": 10, "c": 1}
    assert imagelist.shared_size(["a", "b"], users, sizes) == 100
    assert imagelist.shared_size(["d"], users, sizes) == 0


def test_it_writes_container_configs_in_go_field_order():
    cfg = {"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}, "Hostname": "", "StopSignal": ""}
    written = imageconfig.ordered_config(cfg)
    assert list(written)[:7] == [
        "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
        "ExposedPorts",
    ]  # fmt: skip
    assert "StopSignal" not in written and written["Env"] is None


def test_it_reads_empty_string_fields_back_as_their_zero_value_for_inspect():
    assert imageconfig.inspect_config({"User": None})["User"] == ""
    assert imageconfig.ordered_config({"User": None})["User"] is None
    assert list(imageconfig.inspect_config({})) == list(imageconfig.ordered_config({}))


def test_it_puts_a_container_config_in_field_order_keeping_its_values():
    cfg = {"Labels": {}, "ExposedPorts": {"80/tcp": {}}, "Hostname": "h", "Other": 1}
    assert list(imageconfig.in_field_order(cfg)) == ["Hostname", "ExposedPorts", "Labels", "Other"]


def test_it_lets_a_signal_through_only_to_a_running_or_paused_container():
    assert {s for s in Status if s.can_signal()} == {Status.RUNNING, Status.PAUSED}


def test_it_words_ps_status_with_the_runtime_status_text():
    info = {
        "Id": "c" * 64, "Name": "/x", "Image": D1, "Path": "sh", "Args": [],
        "Created": "2026-01-02T03:04:05Z", "Config": {"Image": "busybox"},
        "HostConfig": {"NetworkMode": "none"},
        "State": {"Status": "running", "Running": True, "ExitCode": 0,
                  "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"},
    }  # fmt: skip
    # Go's time.Since(zero time) saturates: moby's State.String() says "Up 292 years"
    assert ps.container_summary(info)["Status"] == "Up 292 years"
    assert status_text("running", started_at=None, finished_at=None) == "Up 292 years"
