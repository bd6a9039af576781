"""No input gives a 500: every form field and JSON API parameter of the web doors, driven by
hypothesis through a signed-in admin's Django test client (every door open).

Each answer must be below 500, and a refusal must say why (a 4xx with a message, or the form
shown again with its error). Work is never started: the tests run inside a transaction that
is never committed, and jobs are queued only once their row commits
(dockweb.jobs.runner.enqueue), so a valid input creates a queued row and nothing more.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containers.models import Container
from images.models import Image, Pull, Reference, Repository

pytestmark = pytest.mark.django_db

EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

IMAGE_ID = "sha256:" + "ab" * 32
CONTAINER_ID = "c0" * 32

# what the issue's attacker tried, and its relatives
ODD = [
    "",
    " ",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "1e309",
    "-1e309",
    "1e-400",
    "-1",
    "0",
    "-0",
    "00",
    "1.5",
    "9" * 40,
    "-" + "9" * 40,
    "0x10",
    "1_000",
    "١٢",
    "½",
    "[]",
    "[",
    "]",
    "[^]",
    "[a-]",
    "\\",
    "*" * 40 + "Q",
    "?",
    "**/*",
    "a" * 300,
    "UPPER",
    "Busybox:Latest",
    "busybox",
    "busybox:latest",
    "busybox@sha256:" + "0" * 64,
    "sha256:" + "0" * 64,
    "sha256:",
    "sha256:zz",
    IMAGE_ID,
    IMAGE_ID[7:19],
    "127.0.0.1:5000/team/app:1",
    "http://127.0.0.1:5000/x",
    "https://x/y?z#w",
    "//x",
    "/",
    "../../etc/passwd",
    "/etc/shadow",
    "a/b/c",
    "a:b:c",
    "@",
    ":",
    "a@b",
    "linux/<b>x</b>",
    "linux/amd64",
    "linux/arm64/v8",
    "windows/amd64",
    "linux/",
    "/amd64",
    "x" * 5000,
    "\x00",
    "a\x00b",
    "\ufffd",
    "\u202e",
    "☺",
    "𝔘𝔫𝔦",
    "\n",
    "\r\n",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "{{7*7}}",
    "%s%s%n",
    "true",
    "false",
    "on",
    "off",
    "yes",
    "no",
    "1",
    "always",
    "on-failure:-1",
    "on-failure:99999999999999",
    "64m",
    "-64m",
    "1e9g",
    "9" * 400 + "m",
    "1e999999999",
    "1e-999999999",
    "-0.5",
    "99999999999999999999g",
    "0.0000001",
    "1:2:3",
    "80:80/udp",
    "0.0.0.0:65536:80",
    "name:1.2.3.4",
    "KEY=value",
    "=x",
    "A B=c",
]
# (no lone surrogates: no client can send one; bytes that are not UTF-8 arrive as U+FFFD)
text = st.one_of(
    st.sampled_from(ODD), st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
)
# JSON values, nested a little; deep nesting is tested on its own below
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)


@pytest.fixture
def role() -> str:
    return "admin"


@pytest.fixture
def user(django_user_model):
    """An admin by role, signed in with force_login (no password to hash per test)."""
    from access.roles import set_role

    user = django_user_model.objects.create(username="alice", is_staff=True)
    set_role(user, "admin")
    return user


@pytest.fixture
def web(user, store):
    """The signed-in admin's client, with an image and a failed pull to point at."""
    image = Image.objects.create(
        image_id=IMAGE_ID,
        created=datetime(2024, 1, 1, tzinfo=UTC),
        size=1,
        compressed_size=1,
        config={"history": [], "config": {}},
    )
    repo = Repository.objects.create(name="docker.io/library/busybox", familiar_name="busybox")
    Reference.objects.create(repository=repo, image=image, tag="latest")
    pull = Pull.objects.create(reference="busybox", status=Pull.Status.FAILED, error="x")
    Container.objects.create(
        container_id=CONTAINER_ID,
        name="fuzzbox",
        image="busybox:latest",
        image_id=IMAGE_ID,
        status="exited",
        created=datetime(2024, 1, 1, tzinfo=UTC),
    )
    client = Client(raise_request_exception=True)
    client.force_login(user)
    client.pull_pk = pull.pk
    return client


def check(response, *, what: str) -> None:
    """Below 500, and a refusal says something."""
    assert response.status_code < 500, what
    if 400 <= response.status_code < 500 and response.status_code not in (404, 405):
        assert response.content.strip(), what
    if response.get("Content-Type", "").startswith("application/json") and response.content:
        body = json.loads(response.content)
        if response.status_code >= 400:
            assert isinstance(body.get("error"), str) and body["error"], what


def test_the_url_conf_is_what_this_file_covers():
    """A new route must be added here (and to the fuzzing below) to pass."""
    names = set()

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                names.add(prefix + str(p.pattern))

    walk(get_resolver().url_patterns)
    ours = {n for n in names if not n.startswith(("admin/", "i18n/"))}
    assert ours == COVERED


COVERED = {
    "",
    "login/",
    "logout/",
    "events/",
    "images/",
    "images/remove/",
    "images/<str:key>/",
    "images/<str:key>/tag/",
    "images/<str:key>/files/",
    "images/<str:key>/layers/<id:position>/",
    "pull/",
    "pull/normalize/",
    "pulls/active/",
    "pulls/<id:pk>/",
    "pulls/<id:pk>/cancel/",
    "operations/<id:pk>/",
    "build/",
    "builds/<id:pk>/",
    "registries/",
    "registries/delete/",
    "containers/",
    "containers/run/",
    "containers/operations/<id:pk>/",
    "containers/consoles/<str:sid>/",
    "containers/consoles/<str:sid>/stream/",
    "containers/consoles/<str:sid>/input/",
    "containers/consoles/<str:sid>/resize/",
    "containers/consoles/<str:sid>/close/",
    "containers/<str:key>/",
    "containers/<str:key>/logs/",
    "containers/<str:key>/console/",
    "containers/<str:key>/<str:action>/",
    "volumes/",
    "volumes/remove/",
    "volumes/prune/",
    "networks/",
    "networks/prune/",
    "networks/connect/",
    "networks/disconnect/",
    "networks/operations/<id:pk>/",
    "networks/<str:key>/",
    "networks/<str:key>/remove/",
    "disk/",
    "disk/prune/",
    "disk/prune/<id:pk>/",
    "disk/measure/",
    "audit/",
    "api/images/",
    "api/images/remove/",
    "api/images/tag/",
    "api/images/<path:key>/",
    "api/pulls/",
    "api/pulls/<id:pk>/",
    "api/pulls/<id:pk>/cancel/",
    "api/operations/<id:pk>/",
    "favicon.ico",
}

# -- query strings of the pages and the API --------------------------------------------------

GET_PARAMS = {
    "/images/": ["all", "digests", "no_trunc", "dangling", "reference", "page"],
    f"/images/{IMAGE_ID}/": ["page"],
    f"/images/{IMAGE_ID}/files/": ["path", "q"],
    f"/images/{IMAGE_ID}/layers/0/": ["q", "change"],
    "/pull/normalize/": ["reference"],
    "/containers/": ["all", "size", "filter", "page"],
    "/containers/run/": ["image", "command", "cpus", "memory", "restart", "network"],
    "/volumes/prune/": [],
    "/networks/prune/": [],
    "/disk/": ["images", "containers", "volumes"],
    "/disk/prune/": ["images", "containers", "volumes"],
    "/audit/": ["actor", "action", "page"],
    "/api/images/": ["all", "digests", "no_trunc", "dangling", "reference"],
    "/api/pulls/": ["active"],
}


@pytest.mark.parametrize("path", sorted(GET_PARAMS))
@EXAMPLES
@given(values=st.lists(text, min_size=6, max_size=6))
def test_query_parameters(web, path, values):
    query = dict(zip(GET_PARAMS[path], values, strict=False))
    check(web.get(path, query), what=f"GET {path} {query!r}")
    if path in ("/images/", f"/images/{IMAGE_ID}/"):
        check(web.get(path, query, headers={"HX-Request": "true"}), what=f"htmx {path}")


@EXAMPLES
@given(key=text)
def test_path_keys(web, key):
    k = quote(key, safe="") or "x"
    for path in (
        f"/images/{k}/",
        f"/images/{k}/files/",
        f"/images/{k}/layers/0/",
        f"/containers/{k}/",
        f"/containers/{k}/logs/",
        f"/containers/{k}/console/",
        f"/api/images/{k}/",
        f"/containers/consoles/{k}/",
        f"/networks/{k}/",
    ):
        check(web.get(path), what=f"GET {path}")


# -- forms -----------------------------------------------------------------------------------

FORMS = {
    "/pull/": ["reference", "platform"],
    f"/images/{IMAGE_ID}/tag/": ["target"],
    "/images/remove/": ["target", "image", "force", "ask", "confirmed"],
    "/build/": ["dockerfile", "tags", "build_args", "no_cache"],
    "/registries/": ["registry", "username", "password"],
    "/registries/delete/": ["registry"],
    "/containers/run/": [
        "image",
        "command",
        "entrypoint",
        "env",
        "volumes",
        "name",
        "workdir",
        "user",
        "hostname",
        "network",
        "network_alias",
        "ip",
        "dns",
        "dns_search",
        "publish_all",
        "auto_remove",
        "memory",
        "cpus",
        "add_host",
        "read_only",
        "publish",
        "restart",
    ],
    "/volumes/": ["name", "labels"],
    "/volumes/remove/": ["name", "ask", "confirmed"],
    "/networks/": ["name", "subnet", "gateway", "ip_range", "internal", "attachable", "labels"],
    "/networks/connect/": ["network", "container", "aliases", "ip"],
    "/networks/disconnect/": ["network", "container"],
    "/networks/nope/remove/": [],
    "/disk/prune/": ["images", "containers", "volumes", "seen"],
    "/containers/nope/start/": ["force", "next", "ask", "confirmed"],
}


@pytest.mark.parametrize("path", sorted(FORMS))
@EXAMPLES
@given(data=st.data())
def test_form_fields(web, path, data):
    fields = FORMS[path]
    form = {f: data.draw(text, label=f) for f in fields}
    if path == "/containers/run/":
        # an image that exists, so the options themselves are what is checked
        form["image"] = data.draw(st.sampled_from(["busybox:latest", form["image"]]))
    check(web.post(path, form), what=f"POST {path} {form!r}")


# Valid-looking values for the other fields while one is fuzzed, so that validation reaches
# the field under test.
DEFAULTS = {
    "reference": "busybox:latest",
    "image": "busybox:latest",
    "target": "busybox:1",
    "tags": "mybox:1",
    "dockerfile": "FROM busybox\n",
    "registry": "127.0.0.1:5000",
    "username": "u",
    "password": "p",
    "name": "vol1",
    "cpus": "0.5",
    "memory": "64m",
    "restart": "no",
    "network": "none",
}


def _one_field_cases(table: dict) -> list[tuple[str, str]]:
    return [(path, field) for path in sorted(table) for field in table[path]]


@pytest.mark.parametrize("path,field", _one_field_cases(FORMS))
def test_each_form_field_with_every_odd_value(web, path, field):
    base = {f: DEFAULTS.get(f, "") for f in FORMS[path]}
    for value in ODD:
        form = {**base, field: value}
        check(web.post(path, form), what=f"POST {path} {field}={value!r}")


@pytest.mark.parametrize("path,field", _one_field_cases(GET_PARAMS))
def test_each_query_parameter_with_every_odd_value(web, path, field):
    for value in ODD:
        check(web.get(path, {field: value}), what=f"GET {path} {field}={value!r}")


# -- the JSON API ----------------------------------------------------------------------------

API = {
    "/api/pulls/": ["reference", "platform"],
    "/api/images/remove/": ["ref", "force", "no_prune"],
    "/api/images/tag/": ["source", "target"],
}


@pytest.mark.parametrize("path", sorted(API))
@EXAMPLES
@given(data=st.data())
def test_json_bodies(web, path, data):
    body = {f: data.draw(json_value, label=f) for f in API[path]}
    raw = json.dumps(body)  # NaN and Infinity as Python writes them (not strict JSON)
    check(web.post(path, raw, content_type="application/json"), what=f"POST {path} {raw}")
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    check(web.post(path, form), what=f"POST {path} form {form!r}")


ODD_JSON = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    -(2**63) - 1,
    10**400,
    1.5,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    [],
    {},
    [[]],
    {"a": None},
    ["busybox"],
    *ODD,
]


@pytest.mark.parametrize("path,field", _one_field_cases(API))
def test_each_json_field_with_every_odd_value(web, path, field):
    base = {f: DEFAULTS.get(f, "busybox:latest") for f in API[path]}
    for value in ODD_JSON:
        raw = json.dumps({**base, field: value})
        check(web.post(path, raw, content_type="application/json"), what=f"POST {path} {raw}")


@pytest.mark.parametrize("path", sorted(API))
@EXAMPLES
@given(body=json_value)
def test_json_bodies_of_any_shape(web, path, body):
    raw = json.dumps(body)
    check(web.post(path, raw, content_type="application/json"), what=f"POST {path} {raw}")


@pytest.mark.parametrize("path", sorted(API))
@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,
        '{"reference": ' * 50_000 + "1" + "}" * 50_000,
        "[" * 100_000 + "]" * 100_000,
        '{"reference": NaN, "platform": Infinity}',
        '{"reference": 1e999}',
        "\x00",
        '"busybox"',
        "",
    ],
    ids=["open", "objects", "closed", "nan", "huge", "nul", "string", "empty"],
)
def test_deep_and_odd_json(web, path, raw):
    response = web.post(path, raw, content_type="application/json")
    check(response, what=f"POST {path} {raw[:40]!r}")
    assert response.status_code == 400


def test_known_cases_of_the_issue(web):
    """The 500s the issue found, each a 400 with a message now."""
    cases = [
        ("post", "/containers/run/", {"image": "busybox:latest", "cpus": "inf"}),
        ("post", "/containers/run/", {"image": "busybox:latest", "cpus": "nan"}),
        ("get", "/api/images/", {"reference": "[]"}),
    ]
    for method, path, data in cases:
        response = getattr(web, method)(path, data)
        assert response.status_code == 400, (path, data)
    for data in ({"target": "UPPER", "image": "x"}, {"target": "UPPER", "image": "http://x/y"}):
        response = web.post("/images/remove/", data)
        assert response.status_code in (302, 400), data
    for platform in ("linux/<b>x</b>", "x" * 5000, "linux/", "linux//amd64"):
        response = web.post(
            "/api/pulls/",
            json.dumps({"reference": "busybox", "platform": platform}),
            content_type="application/json",
        )
        assert response.status_code == 400, platform
        assert "platform" in response.json()["error"]
    ok = web.post(
        "/api/pulls/",
        json.dumps({"reference": "busybox", "platform": "linux/arm64"}),
        content_type="application/json",
    )
    assert ok.status_code in (200, 201, 202), ok.content
    assert not math.isnan(0.0)


# -- routes with ids, the container's doors, sign-in ----------------------------------------

INT_ROUTES = [
    ("get", "/pulls/{}/"),
    ("post", "/pulls/{}/cancel/"),
    ("get", "/operations/{}/"),
    ("get", "/builds/{}/"),
    ("get", "/containers/operations/{}/"),
    ("get", "/networks/operations/{}/"),
    ("get", "/disk/prune/{}/"),
    ("get", "/api/pulls/{}/"),
    ("post", "/api/pulls/{}/cancel/"),
    ("get", "/api/operations/{}/"),
    ("get", "/images/" + IMAGE_ID + "/layers/{}/"),
]


@pytest.mark.parametrize("method,route", INT_ROUTES)
def test_integer_ids(web, method, route):
    for pk in ("0", "1", "007", "9" * 19, "9" * 30, "18446744073709551616"):
        path = route.format(pk)
        check(getattr(web, method)(path), what=f"{method} {path}")
        check(getattr(web, method)(path, headers={"HX-Request": "true"}), what=path)


def test_the_containers_doors(web):
    base = f"/containers/{CONTAINER_ID}"
    for value in ODD:
        check(web.get(f"{base}/logs/", {"offset": value}), what=f"logs offset={value!r}")
        check(web.post(f"{base}/console/", {"shell": value}), what=f"console shell={value!r}")
        action = quote(value, safe="") or "x"
        form = {"force": value, "volumes": value, "next": value}
        check(web.post(f"{base}/{action}/", form), what=f"action {value!r}")
        for known in ("start", "remove", "diff", "top"):
            check(web.post(f"{base}/{known}/", form), what=f"{known} {form!r}")
        sid = quote(value, safe="") or "x"
        for door in ("input", "resize", "close"):
            check(
                web.post(f"/containers/consoles/{sid}/{door}/", {"data": value, "cols": value}),
                what=f"console {door} {value!r}",
            )
    check(web.get(f"{base}/console/"), what="console page")
    check(web.get(base + "/"), what="detail")


def test_the_event_stream(web):
    """/events/ takes no input: odd query parameters are ignored, other methods refused."""
    assert web.post("/events/").status_code == 405
    response = web.get("/events/", {"x" * 10: "\x00\ud7ff", "since": "-1e999"})
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    response.close()  # the stream is never read: it would run until its MAX_AGE


def test_sign_in_and_out(web):
    anonymous = Client(raise_request_exception=True)
    for value in ODD[::6]:  # each refused sign-in hashes a password: a sample
        form = {"username": value, "password": value, "next": value}
        check(anonymous.post("/login/", form), what=f"login {value!r}")
        check(anonymous.get("/login/", {"next": value}), what=f"login next={value!r}")
    check(web.post("/disk/measure/"), what="measure")
    check(web.post("/logout/"), what="logout")
