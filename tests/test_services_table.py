"""image_table, image_detail and get_image: docker images' rows and totals from the database."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from dockweb.runtime.errors import ImageNotFound
from images import services
from images.models import Image, ImageLayer, Layer, Reference, Repository
from tests.support import images as im

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _hex(n: int, c: str = "a") -> str:
    return "sha256:" + f"{n:04d}".ljust(64, c)


def _layer(n: int, size: int, compressed: int = 0) -> Layer:
    return Layer.objects.create(chain_id=_hex(n, "c"), diff_id=_hex(n, "d"), size=size,
                                compressed_size=compressed or size // 2)


def _image(n: int, layers: list[Layer], *, parent: str = "", days: int = 0) -> Image:
    image = Image.objects.create(
        image_id=_hex(n), created=T0 + timedelta(days=days), size=sum(la.size for la in layers),
        compressed_size=sum(la.compressed_size for la in layers), parent_image_id=parent,
        config={"history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
                "config": {"Cmd": ["sh"], "Env": ["A=1"]}},
    )
    ImageLayer.objects.bulk_create(
        ImageLayer(image=image, layer=la, position=i) for i, la in enumerate(layers)
    )
    return image


def _ref(image: Image, name: str, *, tag: str = "", digest: str = "") -> None:
    familiar = name.removeprefix("docker.io/").removeprefix("library/")
    repo, _ = Repository.objects.get_or_create(name=name, defaults={"familiar_name": familiar})
    Reference.objects.create(repository=repo, image=image, tag=tag, digest=digest)


@pytest.fixture
def catalogue():
    """app (two tags and a digest), base (tagged, parent of app), a dangling head, an
    intermediate image with no reference, and a digest-only image."""
    base_layer, mid_layer, top_layer = _layer(1, 1000), _layer(2, 200), _layer(3, 30)
    base = _image(1, [base_layer], days=1)
    inter = _image(2, [base_layer, mid_layer], parent=base.image_id, days=2)
    app = _image(3, [base_layer, mid_layer, top_layer], parent=inter.image_id, days=3)
    dangling = _image(4, [_layer(4, 7)], days=4)
    digest_only = _image(5, [_layer(5, 11)], days=5)
    _ref(base, "docker.io/library/busybox", tag="latest")
    _ref(app, "docker.io/team/app", tag="1")
    _ref(app, "docker.io/team/app", tag="latest")
    _ref(app, "docker.io/team/app", digest=_hex(9, "f"))
    _ref(digest_only, "registry.local:5000/x", digest=_hex(8, "f"))
    return {"base": base, "inter": inter, "app": app, "dangling": dangling,
            "digest_only": digest_only}


def _rows(**kw) -> list[tuple[str, str, str, str]]:
    rows, _ = services.image_table(**kw)
    return [(r["id"], r["repository"], r["tag"], r["digest"]) for r in rows]


def test_it_groups_rows_as_docker_images_does(catalogue):
    c = catalogue
    assert _rows() == [
        (c["digest_only"].short_id, "registry.local:5000/x", "<none>", ""),
        (c["dangling"].short_id, "<none>", "<none>", "<none>"),
        (c["app"].short_id, "team/app", "1", "<none>"),
        (c["app"].short_id, "team/app", "latest", "<none>"),
        (c["base"].short_id, "busybox", "latest", "<none>"),
    ]


def test_it_shows_digests_and_intermediate_images_on_request(catalogue):
    c = catalogue
    digest = _hex(9, "f")
    rows = _rows(digests=True, all=True, no_trunc=True)
    assert rows == [
        (c["digest_only"].image_id, "registry.local:5000/x", "<none>", _hex(8, "f")),
        (c["dangling"].image_id, "<none>", "<none>", "<none>"),
        (c["app"].image_id, "team/app", "1", digest),
        (c["app"].image_id, "team/app", "latest", digest),
        (c["inter"].image_id, "<none>", "<none>", "<none>"),
        (c["base"].image_id, "busybox", "latest", "<none>"),
    ]


def test_it_filters_dangling_images_as_dockerd(catalogue):
    c = catalogue
    assert [r[0] for r in _rows(dangling=True)] == [
        c["digest_only"].short_id, c["dangling"].short_id
    ]
    assert [r[0] for r in _rows(dangling=False)] == [
        c["digest_only"].short_id, c["app"].short_id, c["app"].short_id, c["base"].short_id
    ]


def test_it_filters_by_reference_with_go_path_match(catalogue):
    c = catalogue
    assert _rows(reference="team/*") == [
        (c["app"].short_id, "team/app", "1", "<none>"),
        (c["app"].short_id, "team/app", "latest", "<none>"),
    ]
    # as Go's path.Match, "*" never crosses a "/"
    assert _rows(reference="*:latest") == [(c["base"].short_id, "busybox", "latest", "<none>")]
    assert _rows(reference="*/*:latest") == [(c["app"].short_id, "team/app", "latest", "<none>")]
    assert _rows(reference="busy*") == [(c["base"].short_id, "busybox", "latest", "<none>")]
    assert _rows(reference="*") == [(c["base"].short_id, "busybox", "latest", "<none>")]


def test_it_counts_shared_layers_once_in_totals(catalogue):
    c = catalogue
    rows, totals = services.image_table(all=True)
    app = next(r for r in rows if r["image"] == c["app"].pk)
    assert (app["size"], app["shared_size"], app["unique_size"]) == (1230, 1200, 30)
    assert app["compressed_size"] == 500 + 100 + 15
    assert app["created"] == T0 + timedelta(days=3)
    assert app["containers"] == 0
    assert totals == {
        "images": 5,
        "on_disk": 1000 + 200 + 30 + 7 + 11,
        "compressed": 500 + 100 + 15 + 3 + 5,
        "sum_of_sizes": 1000 + 1200 + 1230 + 7 + 11,
        "shared_savings": 1000 + 1200 + 1230 + 7 + 11 - (1000 + 200 + 30 + 7 + 11),
    }
    _, shown = services.image_table(reference="team/*")
    assert shown["images"] == 1
    assert shown["on_disk"] == shown["sum_of_sizes"] == 1230


def test_it_lists_a_thousand_images_in_a_few_queries(django_assert_max_num_queries):
    layers = Layer.objects.bulk_create(
        Layer(chain_id=_hex(n, "c"), diff_id=_hex(n, "d"), size=n, compressed_size=n)
        for n in range(1001)
    )
    images = Image.objects.bulk_create(
        Image(image_id=_hex(n), created=T0 + timedelta(minutes=n), size=n) for n in range(1000)
    )
    ImageLayer.objects.bulk_create(
        ImageLayer(image=image, layer=la, position=p)
        for n, image in enumerate(images)
        for p, la in enumerate([layers[1000], layers[n]])
    )
    repos = Repository.objects.bulk_create(
        Repository(name=f"docker.io/team/r{n}", familiar_name=f"team/r{n}") for n in range(1000)
    )
    Reference.objects.bulk_create(
        Reference(repository=repos[n], image=images[n], tag=f"t{t}")
        for n in range(1000)
        for t in range(3)
    )
    with django_assert_max_num_queries(5):
        rows, totals = services.image_table()
    assert len(rows) == 3000
    assert totals["images"] == 1000
    assert totals["on_disk"] == sum(range(1001))


def test_it_details_an_image_with_its_layers_and_sharers(catalogue, django_assert_max_num_queries):
    c = catalogue
    with django_assert_max_num_queries(6):
        detail = services.image_detail(c["app"])
    assert detail["tags"] == ["team/app:1", "team/app:latest"]
    assert detail["digests"] == [f"team/app@{_hex(9, 'f')}"]
    assert [la["created_by"] for la in detail["layers"]] == ["layer 0", "layer 1", "layer 2"]
    assert [la["size"] for la in detail["layers"]] == [1000, 200, 30]
    assert detail["layers"][0]["shared_with"] == [
        (c["base"].pk, c["base"].short_id, "busybox:latest"),
        (c["inter"].pk, c["inter"].short_id, "<none>:<none>"),
    ]
    assert detail["layers"][2]["shared_with"] == []
    assert detail["config"]["Cmd"] == ["sh"]
    assert detail["config"]["Entrypoint"] is None
    assert [h["size"] for h in detail["history"]] == [1000, 200, 30]


def test_it_finds_an_image_by_pk_id_prefix_or_reference(catalogue):
    c = catalogue
    app = c["app"]
    assert services.get_image(app.pk) == app
    assert services.get_image(str(app.pk)) == app
    assert services.get_image(app.image_id) == app
    assert services.get_image(app.image_id[7:19]) == app
    assert services.get_image("team/app") == app
    assert services.get_image("docker.io/team/app:1") == app
    assert services.get_image(f"team/app@{_hex(9, 'f')}") == app
    with pytest.raises(ImageNotFound, match="No such image: team/app:2"):
        services.get_image("team/app:2")
    with pytest.raises(ImageNotFound, match="No such image: nothing:latest"):
        services.get_image("nothing")


@pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")
def test_it_totals_real_images_sharing_layers(settings, tmp_path, registry):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    a, b = im.shared_base_pair()
    im.push_image(registry.host, "table/a", "1", a)
    im.push_image(registry.host, "table/b", "1", b)
    services.pull_image(f"{registry.host}/table/a:1")
    services.pull_image(f"{registry.host}/table/b:1")
    sizes = {c: la.size for c, la in services.get_store().layers().items()}

    rows, totals = services.image_table()
    # created at the same time: newest first, then by ID as dockerd sorts
    expected = sorted([(a.image_id, "a"), (b.image_id, "b")], reverse=True)
    assert [(r["image_id"], r["repository"], r["tag"]) for r in rows] == [
        (image_id, f"{registry.host}/table/{name}", "1") for image_id, name in expected
    ]
    assert totals["on_disk"] == sum(sizes.values())
    assert totals["sum_of_sizes"] == sum(sizes[c] for c in a.chain_ids + b.chain_ids)
    assert totals["shared_savings"] == sizes[a.chain_ids[0]] + sizes[a.chain_ids[1]]
    assert totals["compressed"] == sum(la.size for la in a.layers) + b.layers[2].size
    row = next(r for r in rows if r["image_id"] == a.image_id)
    assert row["shared_size"] == sizes[a.chain_ids[0]] + sizes[a.chain_ids[1]]
