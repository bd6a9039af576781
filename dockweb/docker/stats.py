"""``docker stats`` rows from the runtime's stats of a container."""

from __future__ import annotations

from dockweb.runtime.units import bytes_size, human_size


def stats_row(info: dict, stats: dict, *, trunc: bool = True) -> dict:
    """docker/cli's stats columns from a stats dict of the runtime."""
    mem = int(stats.get("memory_usage", stats.get("memory", 0)) or 0)
    limit = int(stats.get("memory_limit", 0) or 0)
    cpu = float(stats.get("cpu_percent", 0.0) or 0.0)
    rx, tx = int(stats.get("net_rx", 0) or 0), int(stats.get("net_tx", 0) or 0)
    br, bw = int(stats.get("block_read", 0) or 0), int(stats.get("block_write", 0) or 0)
    return {
        "ID": info["Id"][:12] if trunc else info["Id"],
        "Container": info["Id"][:12] if trunc else info["Id"],
        "Name": info["Name"].lstrip("/"),
        "CPUPerc": f"{cpu:.2f}%",
        "MemUsage": f"{bytes_size(mem)} / {bytes_size(limit)}",
        "MemPerc": f"{(mem / limit * 100) if limit else 0.0:.2f}%",
        "NetIO": f"{human_size(rx, 3)} / {human_size(tx, 3)}",
        "BlockIO": f"{human_size(br, 3)} / {human_size(bw, 3)}",
        "PIDs": str(int(stats.get("pids", 0) or 0)),
    }
