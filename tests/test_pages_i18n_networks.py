"""The Networks pages, the Run form's network fields and a container's networks and health
in Simplified Chinese: none of the English labels they were written with is left on the
page (text, placeholders, aria-labels and the confirmation questions), while Docker's own
words (network names, flags, a health check's output, dockerd's refusals) stay as they are.
"""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from networks.models import Network, NetworkOperation
from tests.support.networks import make_container, make_networks

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
CID = "5d" * 32
STOPPED = "6e" * 32
NID = "ac" * 32

# attributes a person reads (the confirmation dialog's words among them)
READ_ATTRS = {"placeholder", "aria-label", "title", "data-confirm", "data-confirm-action"}


class _Words(HTMLParser):
    """The text a person reads on a page: text nodes outside <script>/<style>, and the
    attributes they see or hear."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        self.parts += [v for k, v in attrs if k in READ_ATTRS and v]

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def read(response, start: str = "<main", end: str = "</main>") -> str:
    """The words of the page between ``start`` and ``end`` (the navigation is
    test_pages_i18n's), one part a line."""
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    part = html[html.index(start) :]
    part = part[: part.index(end) + len(end)] if end in part else part
    parser = _Words()
    parser.feed(part)
    return "\n".join(parser.parts)


def assert_no_english(words: str, english: list[str]) -> None:
    left = [e for e in english if e in words]
    assert not left, (left, words)


@pytest.fixture
def role() -> str:
    return "admin"  # every button and form shows, to be translated


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Queued operations stay queued: these tests read pages only."""
    from networks import tasks

    monkeypatch.setattr(tasks.run_operation, "delay", lambda pk: None)


@pytest.fixture
def scene(db):
    """bridge/host/none, ``appnet`` (internal, a range, a label) with ``web`` running and
    healthy-checked on it, ``old`` stopped on it, the unused ``spare``, and a finished
    create operation."""
    now = timezone.now()
    net = make_networks(
        NID,
        web=CID,
        old=STOPPED,
        subnet="10.40.0.0/24",
        ip="10.40.0.130",
        mac="02:42:0a:28:00:82",
        aliases=["db"],
        created=now - timedelta(hours=1),
        ip_range="10.40.0.128/25",
    )
    Network.objects.create(
        network_id="cd" * 32, name="spare", position=4, subnet="10.41.0.0/24", gateway="10.41.0.1"
    )
    log = [
        {"Start": "2026-01-01T00:00:01.5Z", "End": "2026-01-01T00:00:01.6Z", "ExitCode": 0,
         "Output": "all good\n"},
        {"Start": "2026-01-01T00:00:02.5Z", "End": "2026-01-01T00:00:02.6Z", "ExitCode": 1,
         "Output": "connection refused\n"},
    ]  # fmt: skip
    for cid, name, status in ((CID, "web", "running"), (STOPPED, "old", "exited")):
        make_container(
            cid,
            name,
            status,
            finished_at=None if status == "running" else now,
            inspect={
                "State": {
                    "Running": status == "running",
                    "Health": {"Status": "unhealthy", "FailingStreak": 3, "Log": log},
                },
            },
        )
    NetworkOperation.objects.create(
        kind="create",
        args={"name": "appnet"},
        status="done",
        network_id=NID,
        result={"id": NID},
    )
    return net


def test_the_networks_list_is_in_chinese(client, scene):
    words = read(client.get("/networks/", headers=ZH))
    for chinese in ("网络", "创建网络", "子网（--subnet，例如 10.20.0.0/24）", "网关", "网络 ID"):
        assert chinese in words, (chinese, words)
    assert "清理未使用的网络" in words and "最近的操作" in words and "是" in words
    assert "appnet" in words and "web" in words  # names stay
    assert_no_english(
        words,
        [
            "Networks",
            "Create a network",
            "Create network",
            "Prune unused networks",
            "Subnet",
            "Gateway",
            "Address range",
            "Labels (one KEY=VALUE a line)",
            "Internal",
            "no way out",
            "Attachable",
            "empty: the",
            "Network ID",
            "Driver",
            "Containers",
            "Recent operations",
        ],
    )


def test_the_create_forms_refusal_is_in_chinese(client, scene):
    response = client.post(
        "/networks/", {"name": "n", "subnet": "10.0.0.0/33", "gateway": "nan"}, headers=ZH
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "无效的 CIDR 地址：10.0.0.0/33" in html
    assert "invalid CIDR address" not in html
    response = client.post("/networks/", {"name": "-bad"}, headers=ZH)
    assert "无效的网络名称 -bad" in response.content.decode()


def test_a_network_page_is_in_chinese(client, scene):
    words = read(client.get(f"/networks/{NID}/", headers=ZH))
    for chinese in ("子网", "网关", "地址范围", "内部", "是：无法访问外部", "可附加", "否"):
        assert chinese in words, (chinese, words)
    assert "IPv4 地址" in words and "MAC 地址" in words and "别名" in words
    assert "停止时无地址" in words and "删除网络" in words and "删除这个网络？" in words
    assert "最近的操作" in words  # the network's create operation
    assert "10.40.0.130/24" in words and "10.40.0.128/25" in words and "tier=back" in words
    assert_no_english(
        words,
        [
            "Networks",
            "driver",
            "created",
            "Remove network",
            "Remove this network?",
            "Subnet",
            "Gateway",
            "Address range",
            "Internal",
            "yes",
            "no way out",
            "Attachable",
            "Container",
            "State",
            "IPv4 address",
            "MAC address",
            "Aliases",
            "none while stopped",
            "Recent operations",
        ],
    )


def test_the_prune_preview_is_in_chinese(client, scene):
    words = read(client.get("/networks/prune/", headers=ZH))
    assert "清理未使用的网络" in words and "将被删除" in words and "删除这些网络" in words
    assert "保留（使用中）" in words and "预定义网络（bridge、host、none）会保留" in words
    assert "spare" in words and "appnet" in words
    assert_no_english(
        words,
        [
            "Prune unused networks",
            "This removes",
            "user-defined",
            "Will be removed",
            "Remove these networks",
            "Kept (in use)",
            "Cancel",
        ],
    )


def test_the_questions_and_operations_are_in_chinese(client, scene):
    asked = client.post(f"/networks/{NID}/remove/", {"ask": "1"}, headers=ZH)
    words = read(asked)
    assert "删除这个网络？" in words and "appnet" in words
    assert_no_english(words, ["Remove this network?", "Remove"])
    asked = client.post(
        "/networks/disconnect/", {"ask": "1", "network": "appnet", "container": CID}, headers=ZH
    )
    words = read(asked)
    assert "断开这个容器与该网络的连接？" in words and "web · appnet" in words
    assert_no_english(words, ["Disconnect this container from the network?", "Disconnect"])
    assert not NetworkOperation.objects.filter(kind__in=["remove", "disconnect"]).exists()

    op = NetworkOperation.objects.get(kind="create")
    words = read(client.get(f"/networks/operations/{op.pk}/", headers=ZH))
    assert "已创建网络" in words and "返回网络列表" in words and "打开网络" in words
    assert_no_english(words, ["Created network", "Back to networks", "Open network", "Networks"])


def test_a_container_page_with_networks_and_health_is_in_chinese(client, scene):
    # up to docker inspect's JSON, which is Docker's and stays English
    inspect = '<section class="card pad" id="inspect">'
    words = read(client.get(f"/containers/{CID}/", headers=ZH), end=inspect)
    for chinese in ("健康状况", "不健康", "连续失败次数 3", "退出码", "输出"):
        assert chinese in words, (chinese, words)
    for chinese in ("网络", "IPv4 地址", "网关", "MAC 地址", "别名", "断开连接", "连接到"):
        assert chinese in words, (chinese, words)
    assert "固定 IPv4（可选）" in words and "固定 IPv4 地址" in words
    assert "断开这个容器与该网络的连接？" in words  # the dialog's question
    # the check's own output and the addresses are not translated
    assert "connection refused" in words and "10.40.0.130/24" in words
    english = [
        "Health",
        "healthy",  # unhealthy too
        "failing streak",
        "Exit code",
        "Output",
        "Networks",
        "IPv4 address",
        "Fixed IPv4",
        "fixed IPv4",
        "Gateway",
        "MAC address",
        "Aliases",
        "aliases",
        "Disconnect",
        "Connect",
    ]
    assert_no_english(words, english)

    words = read(client.get(f"/containers/{STOPPED}/", headers=ZH), end=inspect)
    assert "停止时无地址" in words
    assert_no_english(words, ["none while stopped", "Health", "failing streak"])


def test_the_run_forms_network_fields_are_in_chinese(client, scene):
    words = read(client.get("/containers/run/", headers=ZH))
    for chinese in (
        "网络（--network）",
        "bridge（默认网桥：分配地址，不解析名称）",
        "网络别名（--network-alias，以空格分隔；仅限用户定义的网络）",
        "固定 IPv4 地址（--ip；仅限用户定义的网络）",
        "留空：下一个空闲地址",
        "DNS 服务器（--dns，以空格分隔）",
        "DNS 搜索域（--dns-search）",
        "将每个暴露的端口发布到主机的随机端口（-P）",
    ):
        assert chinese in words, (chinese, words)
    assert_no_english(
        words,
        [
            "Network (--network)",
            "the default bridge",
            "find each other",
            "Network aliases",
            "user networks only",
            "Fixed IPv4 address",
            "empty: the next free address",
            "DNS servers",
            "DNS search domains",
            "Publish every exposed port",
        ],
    )
