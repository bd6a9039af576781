"""``docker volume ls`` rows."""

from __future__ import annotations

from dockweb.docker.template_funcs import lookup_method


def volume_rows(volumes: list[dict]) -> list[dict]:
    """docker/cli's volumeContext for each volume: the values ``volume ls --format`` sees."""
    rows = []
    for v in volumes:
        labels = v.get("Labels") or {}
        row = {
            "Name": v["Name"],
            "Driver": v["Driver"],
            "Scope": v.get("Scope", "local"),
            "Mountpoint": v["Mountpoint"],
            "Labels": ",".join(f"{k}={val}" for k, val in labels.items()),
            "Links": "N/A",
            "Size": "N/A",
        }
        row["Label"] = lookup_method(labels)
        rows.append(row)
    return rows
