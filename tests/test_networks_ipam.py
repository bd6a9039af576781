"""Address allocation as libnetwork's: a range's own first address is given (only the
subnet's network and broadcast addresses never are), and subnets that would clash with
dockweb's own way out are refused."""

from __future__ import annotations

import pytest

from dockweb.runtime.errors import DockwebError
from dockweb.runtime.networks import NetworkManager


def _allocate(mgr: NetworkManager, net, n: int, first: int = 0) -> list[str]:
    with mgr.locked():
        return [mgr.allocate(net, f"{i:064x}", f"c{i}").ip for i in range(first, first + n)]


def test_a_range_starts_at_its_first_address(tmp_path):
    mgr = NetworkManager(str(tmp_path))
    net = mgr.create("ranged", subnet="10.20.0.0/24", ip_range="10.20.0.128/25")
    assert net.gateway == "10.20.0.1"
    assert _allocate(mgr, net, 2) == ["10.20.0.128", "10.20.0.129"]


def test_the_subnets_own_addresses_and_the_gateway_are_never_given(tmp_path):
    mgr = NetworkManager(str(tmp_path))
    net = mgr.create("edge", subnet="10.21.0.0/24", ip_range="10.21.0.254/31")
    assert _allocate(mgr, net, 1) == ["10.21.0.254"]  # .255 is the subnet's broadcast
    with pytest.raises(DockwebError, match="no available IPv4 addresses"):
        _allocate(mgr, net, 1, first=1)
    whole = mgr.create("whole", subnet="10.22.0.0/30")
    assert _allocate(mgr, whole, 1) == ["10.22.0.2"]  # .0 network, .1 gateway, .3 broadcast


@pytest.mark.parametrize("subnet", ["10.0.2.0/24", "10.0.0.0/8", "10.0.2.128/25"])
def test_a_subnet_over_the_way_out_is_refused(tmp_path, subnet):
    with pytest.raises(DockwebError, match="Pool overlaps with 10.0.2.0/24"):
        NetworkManager(str(tmp_path)).create("clash", subnet=subnet)
