"""docker/cli's image rows: ``docker images`` (a row per repository:tag, and per digest
with --digests), ``docker history`` and ``docker system df -v``, from the engine's
image summaries (types.ImageSummary) and history items."""

from __future__ import annotations

from dockweb.docker.tabwriter import truncate_display
from dockweb.docker.times import created_at, rfc3339, since
from dockweb.runtime import reference as refs
from dockweb.runtime.units import human_size


def trunc_id(image_id: str, trunc: bool) -> str:
    """An image ID as the client shows it: 12 hex digits without "sha256:" when truncated."""
    if not trunc:
        return image_id
    hexpart = image_id.split(":", 1)[1] if ":" in image_id else image_id
    return hexpart[:12]


def image_rows(
    summaries: list[dict], *, digests: bool, trunc: bool, fmt: str = ""
) -> list[dict]:
    """docker/cli's imageFormat: a row per repository:tag (and per digest with --digests).

    As docker/cli: tag rows carry their digests when --digests is given or the format
    names {{.Digest}} (needDigest); digest-only rows follow the flag alone.
    """
    need_digest = digests or "{{.Digest}}" in fmt
    rows = []
    for s in summaries:
        contexts: list[tuple[str, str, str]] = []
        if s["RepoTags"] == ["<none>:<none>"] and s["RepoDigests"] == ["<none>@<none>"]:
            contexts.append(("<none>", "<none>", "<none>"))
        else:
            repo_tags: dict[str, list[str]] = {}
            repo_digests: dict[str, list[str]] = {}
            for r in s["RepoTags"]:
                ref = refs.parse_normalized_named(r)
                if ref.tag:
                    repo_tags.setdefault(ref.familiar_name, []).append(ref.tag)
            for r in s["RepoDigests"]:
                ref = refs.parse_normalized_named(r)
                if ref.digest:
                    repo_digests.setdefault(ref.familiar_name, []).append(ref.digest)
            for repo, tags in repo_tags.items():
                ds = repo_digests.pop(repo, []) if need_digest else []
                repo_digests.pop(repo, None)
                for tag in tags:
                    if not ds:
                        contexts.append((repo, tag, "<none>"))
                    for d in ds:
                        contexts.append((repo, tag, d))
            for repo, ds in repo_digests.items():
                if digests:
                    contexts.extend((repo, "<none>", d) for d in ds)
                else:
                    contexts.append((repo, "<none>", ""))
        for repo, tag, digest in contexts:
            shared = s.get("SharedSize", -1)
            rows.append(
                {
                    "Containers": "N/A" if s.get("Containers", -1) == -1 else str(s["Containers"]),
                    "CreatedAt": created_at(s["Created"]),
                    "CreatedSince": since(s["Created"]),
                    "Digest": digest,
                    "ID": trunc_id(s["Id"], trunc),
                    "Repository": repo,
                    "SharedSize": "N/A" if shared == -1 else human_size(shared, 4),
                    "Size": human_size(s["Size"]),
                    "Tag": tag,
                    "UniqueSize": (
                        "N/A" if shared == -1 else human_size(s["VirtualSize"] - shared, 4)
                    ),
                    "VirtualSize": human_size(s["VirtualSize"], 4),
                }
            )
    return rows


def history_rows(items: list[dict], *, human: bool, trunc: bool) -> list[dict]:
    """docker/cli's historyContext for each layer of ``docker history``."""
    rows = []
    for h in items:
        created_by = h["CreatedBy"].replace("\t", " ")
        rows.append(
            {
                "ID": trunc_id(h["Id"], trunc) if h["Id"] != "<missing>" else "<missing>",
                "CreatedSince": since(h["Created"]) if human else rfc3339(h["Created"]),
                "CreatedAt": rfc3339(h["Created"]),
                "CreatedBy": truncate_display(created_by, 45) if trunc else created_by,
                "Size": human_size(h["Size"]) if human else str(h["Size"]),
                "Comment": h["Comment"],
            }
        )
    return rows


def df_image_rows(images: list[dict]) -> list[dict]:
    """docker/cli's verbose image rows: the first tag only; <none> for dangling ones."""
    rows = []
    for s in images:
        repo = tag = "<none>"
        dangling = s["RepoTags"] == ["<none>:<none>"] and s["RepoDigests"] == ["<none>@<none>"]
        if s["RepoTags"] and not dangling:
            ref = refs.parse_normalized_named(s["RepoTags"][0])
            if ref.tag:
                repo, tag = ref.familiar_name, ref.tag
        one = dict(s, RepoTags=["<none>:<none>"], RepoDigests=["<none>@<none>"])
        row = image_rows([one], digests=False, trunc=True)[0]
        # system df -v prints the image's size with 4 digits, as SHARED and UNIQUE SIZE
        row.update(Repository=repo, Tag=tag, Size=row["VirtualSize"])
        rows.append(row)
    return rows
