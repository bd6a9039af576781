"""The network forms: what the pages accept, checked before any service sees it (the
runtime checks again, as root, with dockerd's words)."""

from __future__ import annotations

import ipaddress
import re

from django import forms
from django.utils.translation import gettext_lazy as _

from dockweb.runtime.networks import NAME

# a network-scoped alias or a DNS search domain: a DNS name
DNS_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text or "") if w]


def _ipv4(value: str, what: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise forms.ValidationError(
            _("%(what)s: %(value)s is not an IPv4 address"), params={"what": what, "value": value}
        ) from None
    if ip.version != 4:
        raise forms.ValidationError(
            _("%(what)s: %(value)s is not an IPv4 address"), params={"what": what, "value": value}
        )
    return str(ip)


def _cidr(value: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise forms.ValidationError(
            _("invalid CIDR address: %(value)s"), params={"value": value}
        ) from None
    if net.version != 4:
        raise forms.ValidationError(_("%(what)s: IPv6 is not supported"), params={"what": what})
    return net


class NetworkCreateForm(forms.Form):
    """``docker network create [--subnet --gateway --ip-range --internal --label
    --attachable] NAME`` (driver bridge)."""

    name = forms.CharField(max_length=128, strip=True)
    subnet = forms.CharField(max_length=64, required=False, strip=True)
    gateway = forms.CharField(max_length=64, required=False, strip=True)
    ip_range = forms.CharField(max_length=64, required=False, strip=True)
    internal = forms.BooleanField(required=False)
    attachable = forms.BooleanField(required=False)
    labels = forms.CharField(max_length=8192, required=False, widget=forms.Textarea)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if not NAME.match(name):
            raise forms.ValidationError(
                _("invalid network name %(name)s: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
                params={"name": name},
            )
        return name

    def clean_subnet(self) -> str:
        value = self.cleaned_data["subnet"]
        if not value:
            return ""
        net = _cidr(value, "subnet")
        if net.prefixlen > 30:
            raise forms.ValidationError(
                _("subnet %(value)s is too small for a network"), params={"value": value}
            )
        return str(net)

    def clean_gateway(self) -> str:
        value = self.cleaned_data["gateway"]
        return _ipv4(value, "gateway") if value else ""

    def clean_ip_range(self) -> str:
        value = self.cleaned_data["ip_range"]
        return str(_cidr(value, "ip-range")) if value else ""

    def clean_labels(self) -> dict[str, str]:
        labels = {}
        for line in (self.cleaned_data["labels"] or "").splitlines():
            line = line.strip()
            if not line:
                continue
            key, _sep, value = line.partition("=")
            if not key.strip():
                raise forms.ValidationError(_("invalid label: %(line)s"), params={"line": line})
            labels[key.strip()] = value
        return labels

    def clean(self) -> dict:
        data = super().clean()
        subnet = data.get("subnet")
        for field, what in (("gateway", "gateway"), ("ip_range", "ip-range")):
            value = data.get(field)
            if not value or field in self.errors or "subnet" in self.errors:
                continue
            if not subnet:
                self.add_error(field, _("ip-range and gateway need a subnet (--subnet)"))
                continue
            sub = ipaddress.ip_network(subnet)
            inside = (
                ipaddress.ip_address(value) in sub
                if field == "gateway"
                else ipaddress.ip_network(value).subnet_of(sub)
            )
            if not inside:
                self.add_error(
                    field,
                    _("no matching subnet for %(what)s %(value)s") % {"what": what, "value": value},
                )
        return data

    def options(self) -> dict:
        """The create's arguments, as the operation records them."""
        d = self.cleaned_data
        return {
            "name": d["name"],
            "subnet": d["subnet"],
            "gateway": d["gateway"],
            "ip_range": d["ip_range"],
            "internal": bool(d["internal"]),
            "attachable": bool(d["attachable"]),
            "labels": d["labels"],
        }


def clean_aliases(text: str) -> list[str]:
    aliases = _words(text)
    for a in aliases:
        if not DNS_NAME.match(a):
            raise forms.ValidationError(_("invalid alias: %(alias)s"), params={"alias": a})
    return aliases


class ConnectForm(forms.Form):
    """``docker network connect [--alias --ip] NETWORK CONTAINER`` from the container
    page."""

    network = forms.CharField(max_length=255, strip=True)
    aliases = forms.CharField(max_length=2048, required=False, strip=True)
    ip = forms.CharField(max_length=64, required=False, strip=True)

    def clean_network(self) -> str:
        name = self.cleaned_data["network"]
        if name in ("host", "none"):
            raise forms.ValidationError(
                _("a container is connected to bridge or user-defined networks only")
            )
        return name

    def clean_aliases(self) -> list[str]:
        return clean_aliases(self.cleaned_data["aliases"])

    def clean_ip(self) -> str:
        value = self.cleaned_data["ip"]
        return _ipv4(value, "ip") if value else ""


class RunNetworkForm(forms.Form):
    """The Run form's networking: ``--network``, ``--network-alias``, ``--ip``, ``--dns``,
    ``--dns-search``, ``-P``. ``choices`` are the networks that exist (the mirror)."""

    network = forms.CharField(max_length=255, required=False, strip=True)
    network_alias = forms.CharField(max_length=2048, required=False, strip=True)
    ip = forms.CharField(max_length=64, required=False, strip=True)
    dns = forms.CharField(max_length=2048, required=False, strip=True)
    dns_search = forms.CharField(max_length=2048, required=False, strip=True)
    publish_all = forms.BooleanField(required=False)

    def __init__(self, *args, choices: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = choices

    def clean_network(self) -> str:
        name = self.cleaned_data["network"] or "bridge"
        if name not in self.choices:
            raise forms.ValidationError(_("network %(name)s not found"), params={"name": name})
        return name

    def clean_network_alias(self) -> list[str]:
        return clean_aliases(self.cleaned_data["network_alias"])

    def clean_ip(self) -> str:
        value = self.cleaned_data["ip"]
        return _ipv4(value, "ip") if value else ""

    def clean_dns(self) -> list[str]:
        out = []
        for w in _words(self.cleaned_data["dns"]):
            try:
                out.append(str(ipaddress.ip_address(w)))
            except ValueError:
                raise forms.ValidationError(
                    _("%(value)s is not an ip address"), params={"value": w}
                ) from None
        return out

    def clean_dns_search(self) -> list[str]:
        out = _words(self.cleaned_data["dns_search"])
        for w in out:
            if w != "." and not DNS_NAME.match(w):
                raise forms.ValidationError(
                    _("invalid search domain: %(value)s"), params={"value": w}
                )
        return out

    def clean(self) -> dict:
        data = super().clean()
        net = data.get("network")
        if net in ("bridge", "none", "host"):
            if data.get("network_alias"):
                self.add_error(
                    "network_alias",
                    _(
                        "network-scoped alias is supported only for containers in user defined "
                        "networks"
                    ),
                )
            if data.get("ip"):
                self.add_error(
                    "ip", _("user specified IP address is supported on user defined networks only")
                )
        return data

    def options(self) -> dict:
        """``build_spec``'s keyword arguments."""
        d = self.cleaned_data
        return {
            "network": d["network"],
            "network_alias": d["network_alias"],
            "ip": d["ip"],
            "dns": d["dns"],
            "dns_search": d["dns_search"],
            "publish_all": bool(d["publish_all"]),
        }

    def first_error(self) -> str:
        for errors in self.errors.values():
            return str(errors[0])
        return ""
