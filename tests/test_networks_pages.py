"""The Networks pages, the Run form's network fields and the container page's networks,
from database rows (the mirror); the network forms; and the worker's side of the network
operations on a real store (records only: no container runs here, so no namespace is
made)."""

from __future__ import annotations

import pytest
from django.test import Client

from containers.models import Container, ContainerOperation
from networks.forms import NetworkCreateForm, RunNetworkForm
from networks.models import Network, NetworkOperation
from tests.support import networks as support_networks

CID = "9c" * 32
OTHER = "7e" * 32
NID = "ab" * 32


@pytest.fixture
def role() -> str:
    return "admin"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Queued operations stay queued: the worker is not what these tests look at."""
    from containers import tasks as container_tasks
    from networks import tasks

    sent = []
    monkeypatch.setattr(tasks.run_operation, "delay", lambda pk: sent.append(pk))
    monkeypatch.setattr(container_tasks.run_operation, "delay", lambda pk: sent.append(pk))
    return sent


def as_role(django_user_model, role: str) -> Client:
    from access.roles import set_role

    user = django_user_model.objects.create_user(f"u-{role}", password="pw-long-enough-1")
    set_role(user, role)
    c = Client()
    c.force_login(user)
    return c


def make_container(status="running", name="web", cid=CID, network="appnet") -> Container:
    return support_networks.make_container(cid, name, status, network=network)


def make_networks() -> Network:
    """The three predefined networks and ``appnet`` with ``web`` attached at 10.30.0.2."""
    return support_networks.make_networks(
        NID,
        web=CID,
        old=OTHER,
        subnet="10.30.0.0/24",
        ip="10.30.0.2",
        mac="02:42:0a:1e:00:02",
        aliases=["db", CID[:12]],
    )


# -- forms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,field,words",
    [
        ({"name": "-bad"}, "name", "invalid network name"),
        ({"name": "a b"}, "name", "invalid network name"),
        ({"name": "n", "subnet": "10.0.0.0/33"}, "subnet", "invalid CIDR address"),
        ({"name": "n", "subnet": "fd00::/64"}, "subnet", "IPv6"),
        ({"name": "n", "subnet": "10.0.0.0/31"}, "subnet", "too small"),
        ({"name": "n", "gateway": "10.0.0.1"}, "gateway", "need a subnet"),
        (
            {"name": "n", "subnet": "10.0.0.0/24", "gateway": "10.0.1.1"},
            "gateway",
            "no matching subnet for gateway 10.0.1.1",
        ),
        (
            {"name": "n", "subnet": "10.0.0.0/24", "gateway": "nan"},
            "gateway",
            "not an IPv4 address",
        ),
        (
            {"name": "n", "subnet": "10.0.0.0/24", "ip_range": "10.1.0.0/25"},
            "ip_range",
            "no matching subnet for ip-range",
        ),
        ({"name": "n", "labels": "=x"}, "labels", "invalid label"),
    ],
)
def test_the_create_form_refuses_what_dockerd_refuses(data, field, words):
    form = NetworkCreateForm(data)
    assert not form.is_valid()
    assert words in " ".join(form.errors[field]), form.errors


def test_the_create_form_gives_the_runtimes_arguments():
    form = NetworkCreateForm(
        {
            "name": "app.net_1",
            "subnet": "10.9.0.7/24",
            "gateway": "10.9.0.254",
            "ip_range": "10.9.0.128/25",
            "internal": "1",
            "labels": "a=1\n\nb=x=y\n",
        }
    )
    assert form.is_valid(), form.errors
    assert form.options() == {
        "name": "app.net_1",
        "subnet": "10.9.0.0/24",
        "gateway": "10.9.0.254",
        "ip_range": "10.9.0.128/25",
        "internal": True,
        "attachable": False,
        "labels": {"a": "1", "b": "x=y"},
    }


def test_the_run_forms_network_fields():
    choices = ["bridge", "none", "host", "appnet"]
    ok = RunNetworkForm(
        {
            "network": "appnet",
            "network_alias": "db, cache",
            "ip": "10.30.0.9",
            "dns": "10.0.0.53 1.1.1.1",
            "dns_search": "example.org",
            "publish_all": "1",
        },
        choices=choices,
    )
    assert ok.is_valid(), ok.errors
    assert ok.options() == {
        "network": "appnet",
        "network_alias": ["db", "cache"],
        "ip": "10.30.0.9",
        "dns": ["10.0.0.53", "1.1.1.1"],
        "dns_search": ["example.org"],
        "publish_all": True,
    }
    assert RunNetworkForm({}, choices=choices).is_valid()  # bridge, as docker run
    for data, words in [
        ({"network": "nowhere"}, "network nowhere not found"),
        ({"network": "bridge", "network_alias": "db"}, "network-scoped alias is supported only"),
        ({"network": "bridge", "ip": "172.17.0.9"}, "user specified IP address is supported"),
        ({"network": "appnet", "ip": "10.30.0"}, "not an IPv4 address"),
        ({"network": "appnet", "dns": "ns1"}, "ns1 is not an ip address"),
        ({"network": "appnet", "network_alias": "bad alias!"}, "invalid alias: alias!"),
    ]:
        form = RunNetworkForm(data, choices=choices)
        assert not form.is_valid(), data
        assert words in form.first_error(), (data, form.errors)


# -- the Networks pages ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_list_shows_each_network_and_its_running_containers(client):
    make_networks()
    make_container("running", "web")
    make_container("exited", "old", cid=OTHER)
    body = client.get("/networks/").content.decode()
    for name in ("bridge", "host", "none", "appnet"):
        assert f'data-network="{name}"' in body
    row = body[body.index('data-network="appnet"') :]
    row = row[: row.index("</tr>")]
    assert NID[:12] in row and "10.30.0.0/24" in row and "10.30.0.1" in row
    assert f"/containers/{CID}/" in row and f"/containers/{OTHER}/" not in row
    assert f"/networks/{NID}/" in body
    assert 'aria-current="page">Networks' in body  # in the navigation
    assert 'name="subnet"' in body and 'name="ip_range"' in body  # the create form


@pytest.mark.django_db
def test_an_exited_container_holds_no_endpoint(client):
    """The mirror of its exit (the Container row) wins over the network's last sync."""
    make_networks()
    make_container("exited", "web")
    body = client.get("/networks/").content.decode()
    row = body[body.index('data-network="appnet"') :]
    assert f"/containers/{CID}/" not in row[: row.index("</tr>")]
    detail = client.get(f"/networks/{NID}/").content.decode()
    assert "10.30.0.2" not in detail and "none while stopped" in detail


@pytest.mark.django_db
def test_create_queues_the_operation_with_the_forms_values(
    client, no_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/networks/",
            {
                "name": "appnet",
                "subnet": "10.30.0.0/24",
                "internal": "1",
                "labels": "a=b",
            },
        )
    op = NetworkOperation.objects.get()
    assert response.status_code == 302 and response.url == f"/networks/operations/{op.pk}/"
    assert op.kind == "create" and no_broker == [op.pk]
    assert op.args == {
        "name": "appnet",
        "subnet": "10.30.0.0/24",
        "gateway": "",
        "ip_range": "",
        "internal": True,
        "attachable": False,
        "labels": {"a": "b"},
    }
    from access.models import AuditEvent

    assert AuditEvent.objects.filter(action="network.create", target="appnet").exists()


@pytest.mark.django_db
def test_create_shows_the_forms_error_and_queues_nothing(client):
    response = client.post(
        "/networks/", {"name": "n", "subnet": "10.0.0.0/24", "gateway": "10.9.9.9"}
    )
    assert response.status_code == 400
    assert "no matching subnet for gateway 10.9.9.9" in response.content.decode()
    assert not NetworkOperation.objects.exists()


@pytest.mark.django_db
def test_roles_viewers_read_operators_create_admins_remove(django_user_model):
    make_networks()
    viewer = as_role(django_user_model, "viewer")
    assert viewer.get("/networks/").status_code == 200
    assert viewer.get(f"/networks/{NID}/").status_code == 200
    viewer_body = viewer.get("/networks/").content.decode()
    assert 'name="subnet"' not in viewer_body and "Prune unused networks" not in viewer_body
    assert viewer.post("/networks/", {"name": "x"}).status_code == 403
    operator = as_role(django_user_model, "operator")
    assert operator.post("/networks/", {"name": "x"}).status_code == 302
    assert operator.post(f"/networks/{NID}/remove/").status_code == 403
    assert operator.post("/networks/prune/").status_code == 403
    assert "Remove network" not in operator.get(f"/networks/{NID}/").content.decode()


@pytest.mark.django_db
def test_inspect_shows_the_containers_with_their_addresses(client):
    make_networks()
    make_container("running", "web")
    make_container("exited", "old", cid=OTHER)
    body = client.get(f"/networks/{NID[:6]}/").content.decode()  # an ID prefix finds it
    assert "<h1>appnet</h1>" in body and "10.30.0.0/24" in body and "tier=back" in body
    assert "yes: no way out" in body  # internal
    web = body[body.index('data-container="web"') :]
    web = web[: web.index("</tr>")]
    assert "10.30.0.2/24" in web and "02:42:0a:1e:00:02" in web and "db" in web
    old = body[body.index('data-container="old"') :]
    assert "none while stopped" in old[: old.index("</tr>")]
    assert client.get("/networks/appnet/").status_code == 200  # by name too
    missing = client.get("/networks/nowhere/")
    assert missing.status_code == 404


@pytest.mark.django_db
def test_remove_and_prune_queue_for_an_admin(client):
    net = make_networks()
    response = client.post(f"/networks/{NID}/remove/")
    op = NetworkOperation.objects.get()
    assert response.url == f"/networks/operations/{op.pk}/"
    assert (op.kind, op.args, op.network_id) == (
        "remove",
        {"network": NID, "name": "appnet"},
        net.network_id,
    )
    assert client.post("/networks/nowhere/remove/").status_code == 404
    client.post("/networks/prune/")
    assert NetworkOperation.objects.filter(kind="prune").count() == 1


@pytest.mark.django_db
def test_remove_and_disconnect_ask_first_without_javascript(client):
    make_networks()
    c = make_container("running", "web")
    asked = client.post(f"/networks/{NID}/remove/", {"ask": "1"})
    body = asked.content.decode()
    assert asked.status_code == 200 and "Remove this network?" in body and "appnet" in body
    assert 'name="confirmed" value="1"' in body
    asked = client.post(
        "/networks/disconnect/", {"ask": "1", "network": "appnet", "container": c.container_id}
    )
    body = asked.content.decode()
    assert "Disconnect this container from the network?" in body and "web · appnet" in body
    assert not NetworkOperation.objects.exists()  # nothing queued before the answer
    done = client.post(f"/networks/{NID}/remove/", {"ask": "1", "confirmed": "1"})
    assert done.status_code == 302 and NetworkOperation.objects.get().kind == "remove"


@pytest.mark.django_db
def test_prune_previews_the_unused_user_networks(client):
    make_networks()
    make_container("running", "web")
    Network.objects.create(
        network_id="cd" * 32, name="spare", position=4, subnet="10.31.0.0/24", gateway="10.31.0.1"
    )
    body = client.get("/networks/prune/").content.decode()
    gone = body[body.index("Will be removed") : body.index("Kept (in use)")]
    kept = body[body.index("Kept (in use)") :]
    assert "spare" in gone and "appnet" not in gone and "bridge" not in gone
    assert "appnet" in kept


@pytest.mark.django_db
def test_the_operation_page_shows_dockerds_refusal(client):
    op = NetworkOperation.objects.create(
        kind="remove",
        args={"network": NID, "name": "appnet"},
        status="failed",
        error="error while removing network: network appnet id abab has active endpoints",
    )
    body = client.get(f"/networks/operations/{op.pk}/").content.decode()
    assert "has active endpoints" in body and "Back to networks" in body


# -- the container page ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_container_page_shows_its_networks_and_connect_disconnect(client):
    make_networks()
    make_container("running", "web")
    body = client.get(f"/containers/{CID}/").content.decode()
    section = body[body.index('id="networks"') :]
    section = section[: section.index("</section>")]
    row = section[section.index('data-network="appnet"') :]
    row = row[: row.index("</tr>")]
    assert "10.30.0.2/24" in row and "10.30.0.1" in row and "02:42:0a:1e:00:02" in row
    assert "db" in row and "Disconnect" in row
    assert 'action="/networks/connect/"' in section
    options = section[section.index('id="connect-network"') :]
    options = options[: options.index("</select>")]
    assert "bridge" in options and "appnet" not in options and "host" not in options


@pytest.mark.django_db
def test_a_viewer_sees_the_networks_without_buttons(django_user_model):
    make_networks()
    make_container("running", "web")
    body = as_role(django_user_model, "viewer").get(f"/containers/{CID}/").content.decode()
    section = body[body.index('id="networks"') :]
    section = section[: section.index("</section>")]
    assert "10.30.0.2/24" in section
    assert "Disconnect" not in section and "/networks/connect/" not in section


@pytest.mark.django_db
def test_connect_and_disconnect_queue_operations(client):
    make_networks()
    make_container("running", "web")
    response = client.post(
        "/networks/connect/", {"network": "bridge", "container": "web", "aliases": "", "ip": ""}
    )
    op = NetworkOperation.objects.get(kind="connect")
    assert response.url == f"/networks/operations/{op.pk}/"
    assert op.args == {"network": "bridge", "container": CID, "aliases": [], "ip": ""}
    assert op.container_id == CID
    client.post("/networks/disconnect/", {"network": NID, "container": CID[:12]})
    op = NetworkOperation.objects.get(kind="disconnect")
    assert op.args == {"network": "appnet", "container": CID}
    bad = client.post(
        "/networks/connect/", {"network": "appnet", "container": "web", "ip": "10.30.0"}
    )
    assert bad.status_code == 400 and b"not an IPv4 address" in bad.content
    assert (
        client.post("/networks/connect/", {"network": "host", "container": "web"}).status_code
        == 400
    )
    assert (
        client.post("/networks/connect/", {"network": "x", "container": "nope"}).status_code == 404
    )


# -- the Run form ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_run_form_offers_the_networks_and_queues_their_options(client):
    make_networks()
    body = client.get("/containers/run/").content.decode()
    select = body[body.index('id="network"') :]
    select = select[: select.index("</select>")]
    assert [
        v in select
        for v in ('value="bridge" selected', 'value="none"', 'value="host"', 'value="appnet"')
    ] == [True] * 4
    for name in ("network_alias", "ip", "dns", "dns_search", "publish_all"):
        assert f'name="{name}"' in body
    response = client.post(
        "/containers/run/",
        {
            "image": "busybox:latest",
            "network": "appnet",
            "network_alias": "db",
            "ip": "10.30.0.9",
            "dns": "10.0.0.53",
            "dns_search": "corp",
            "publish_all": "1",
            "restart": "no",
        },
    )
    assert response.status_code == 302, response.content.decode()[-800:]
    op = ContainerOperation.objects.get(kind="run")
    assert (op.args["network"], op.args["network_alias"], op.args["ip"]) == (
        "appnet",
        ["db"],
        "10.30.0.9",
    )
    assert (op.args["dns"], op.args["dns_search"], op.args["publish_all"]) == (
        ["10.0.0.53"],
        ["corp"],
        True,
    )


@pytest.mark.django_db
def test_the_run_form_refuses_a_network_that_does_not_exist(client):
    make_networks()
    response = client.post(
        "/containers/run/", {"image": "busybox:latest", "network": "nowhere", "restart": "no"}
    )
    assert response.status_code == 400
    assert "network nowhere not found" in response.content.decode()
    response = client.post(
        "/containers/run/",
        {"image": "busybox:latest", "network": "bridge", "ip": "172.17.0.5", "restart": "no"},
    )
    assert response.status_code == 400
    assert "user specified IP address is supported on user defined networks only" in (
        response.content.decode()
    )
    assert not ContainerOperation.objects.exists()


# -- the worker's side, on a real store --------------------------------------------------


@pytest.mark.django_db
def test_the_worker_creates_mirrors_refuses_and_removes(store):
    from networks import services

    def run(kind, **args) -> NetworkOperation:
        op = NetworkOperation.objects.create(kind=kind, args=args)
        services.run_operation(op.pk)
        op.refresh_from_db()
        return op

    op = run(
        "create",
        name="appnet",
        subnet="10.40.0.0/24",
        gateway="",
        ip_range="",
        internal=True,
        attachable=False,
        labels={"a": "b"},
    )
    assert op.status == "done", op.error
    net = Network.objects.get(name="appnet")
    assert (net.network_id, net.subnet, net.gateway, net.internal, net.labels) == (
        op.result["id"],
        "10.40.0.0/24",
        "10.40.0.1",
        True,
        {"a": "b"},
    )
    assert [n.name for n in Network.objects.all()] == ["bridge", "host", "none", "appnet"]

    dup = run("create", name="appnet", subnet="", gateway="", ip_range="")
    assert dup.status == "failed" and dup.error == "network with name appnet already exists"
    overlap = run("create", name="other", subnet="10.40.0.128/25")
    assert overlap.error == "Pool overlaps with other one on this address space"
    bridge = run("remove", network="bridge", name="bridge")
    assert bridge.error == "bridge is a pre-defined network and cannot be removed"

    run("create", name="spare", subnet="", gateway="", ip_range="")
    assert Network.objects.get(name="spare").subnet == "172.18.0.0/16"
    done = run("remove", network=net.network_id, name="appnet")
    assert done.status == "done" and done.result == {"name": "appnet"}
    pruned = run("prune")
    assert pruned.result == {"deleted": ["spare"]}
    assert [n.name for n in Network.objects.all()] == ["bridge", "host", "none"]
    gone = run("remove", network="appnet", name="appnet")
    assert gone.error == "network appnet not found"
