"""docker/cli's image rows: ``docker images`` (a row per repository:tag, and per digest
with --digests), ``docker history`` and ``docker system df -v``, from the engine's
image summaries (types.ImageSummary) and history items."""

from __future__ import annotations

from dockweb.docker.tabwriter import truncate_display
from dockweb.docker.times import created_at, rfc3339, since
from dockweb.runtime import reference as refs
from dockweb.runtime.imagelist import NONE_DIGESTS, NONE_TAGS
from dockweb.runtime.units import human_size


def trunc_id(image_id: str, trunc: bool) -> str:
    """An image ID as the client shows it: 12 hex digits without "sha256:" when truncated."""
    if not trunc:
        return image_id
    hexpart = image_id.split(":", 1)[1] if ":" in image_id else image_id
    return hexpart[:12]


def group_references(
    tags: list[tuple[str, str]],
    digests: list[tuple[str, str]],
    *,
    tag_digests: bool,
    digest_rows: bool,
) -> list[tuple[str, str, str]]:
    """docker/cli's imageFormat for one image: its (repository, tag, digest) rows.

    ``tags`` are (familiar repository, tag) pairs, ``digests`` (familiar repository,
    digest) pairs, in order. No reference at all: one ``<none>`` row (docker/cli's
    isDangling). A row per repository:tag, carrying each digest of its repository when
    ``tag_digests`` (else "<none>"); a repository with digests but no tag gives a row per
    digest when ``digest_rows``, else one row with an empty digest. Pure.
    """
    if not tags and not digests:
        return [("<none>", "<none>", "<none>")]
    repo_tags: dict[str, list[str]] = {}
    repo_digests: dict[str, list[str]] = {}
    for repo, tag in tags:
        repo_tags.setdefault(repo, []).append(tag)
    for repo, digest in digests:
        repo_digests.setdefault(repo, []).append(digest)
    out: list[tuple[str, str, str]] = []
    for repo, repo_tag_list in repo_tags.items():
        ds = repo_digests.pop(repo, []) if tag_digests else []
        repo_digests.pop(repo, None)  # digests are never rows of their own beside a tag
        for tag in repo_tag_list:
            if not ds:
                out.append((repo, tag, "<none>"))
            out.extend((repo, tag, d) for d in ds)
    for repo, ds in repo_digests.items():
        if digest_rows:
            out.extend((repo, "<none>", d) for d in ds)
        else:
            out.append((repo, "<none>", ""))
    return out


def without_references(summary: dict) -> bool:
    """docker/cli's isDangling: an ImageSummary with no tag and no digest (empty lists, or
    the ``<none>`` markers dockerd puts there)."""
    tags, digests = summary["RepoTags"] or [], summary["RepoDigests"] or []
    return (not tags and not digests) or (tags == NONE_TAGS and digests == NONE_DIGESTS)


def summary_references(summary: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """An ImageSummary's RepoTags and RepoDigests as (familiar repository, tag) and
    (familiar repository, digest) pairs; the ``<none>`` markers of an image without
    references (or empty lists) give none."""
    if without_references(summary):
        return [], []
    tag_pairs = []
    for r in summary["RepoTags"] or []:
        ref = refs.parse_normalized_named(r)
        if ref.tag:
            tag_pairs.append((ref.familiar_name, ref.tag))
    digest_pairs = []
    for r in summary["RepoDigests"] or []:
        ref = refs.parse_normalized_named(r)
        if ref.digest:
            digest_pairs.append((ref.familiar_name, ref.digest))
    return tag_pairs, digest_pairs


def image_rows(summaries: list[dict], *, digests: bool, trunc: bool, fmt: str = "") -> list[dict]:
    """docker/cli's imageFormat: a row per repository:tag (and per digest with --digests).

    As docker/cli: tag rows carry their digests when --digests is given or the format
    names {{.Digest}} (needDigest); digest-only rows follow the flag alone.
    """
    need_digest = digests or "{{.Digest}}" in fmt
    rows = []
    for s in summaries:
        tag_pairs, digest_pairs = summary_references(s)
        contexts = group_references(
            tag_pairs, digest_pairs, tag_digests=need_digest, digest_rows=digests
        )
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
                    "Size": human_size(s["Size"], 3),
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
                "Size": human_size(h["Size"], 3) if human else str(h["Size"]),
                "Comment": h["Comment"],
            }
        )
    return rows


def df_image_rows(images: list[dict]) -> list[dict]:
    """docker/cli's verbose image rows: the first tag only; <none> for dangling ones."""
    rows = []
    for s in images:
        repo = tag = "<none>"
        if s["RepoTags"] and not without_references(s):
            ref = refs.parse_normalized_named(s["RepoTags"][0])
            if ref.tag:
                repo, tag = ref.familiar_name, ref.tag
        one = dict(s, RepoTags=NONE_TAGS, RepoDigests=NONE_DIGESTS)
        row = image_rows([one], digests=False, trunc=True)[0]
        # system df -v prints the image's size with 4 digits, as SHARED and UNIQUE SIZE
        row.update(Repository=repo, Tag=tag, Size=row["VirtualSize"])
        rows.append(row)
    return rows
