"""``docker stats`` rows from the runtime's stats of a container, and the frames of the
Engine API's ``/containers/{id}/stats`` from its cgroup samples."""

from __future__ import annotations

from dockweb.runtime.units import bytes_size, human_size, rfc3339nano


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


# -- the Engine API's stats (types.StatsJSON as dockerd 20.10 writes it) ------------------

ZERO_TIME = "0001-01-01T00:00:00Z"

_BLKIO_KEYS = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)


def zero_cpu_stats() -> dict:
    """A CPUStats of zeros as Go encodes it (the omitempty fields left out)."""
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def stats_json(sample: dict | None, *, name: str, cid: str, preread: str, precpu: dict) -> dict:
    """One frame of ``GET /containers/{id}/stats``: a runtime sample (``stats_sample``;
    None for a container that is not running: dockerd's frame of zeros) with the previous
    frame's ``read`` and ``cpu_stats`` as ``preread`` and ``precpu_stats``."""
    if sample is None:
        sample = {
            "pids_stats": {},
            "blkio_stats": dict.fromkeys(_BLKIO_KEYS),
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": zero_cpu_stats(),
            "memory_stats": {},
        }
        read = ZERO_TIME
    else:
        read = rfc3339nano(sample["read"])
    frame = {
        "read": read,
        "preread": preread,
        "pids_stats": sample["pids_stats"],
        "blkio_stats": sample["blkio_stats"],
        "num_procs": sample["num_procs"],
        "storage_stats": sample["storage_stats"],
        "cpu_stats": sample["cpu_stats"],
        "precpu_stats": precpu,
        "memory_stats": sample["memory_stats"],
        "name": "/" + name.lstrip("/"),
        "id": cid,
    }
    if sample.get("networks"):
        frame["networks"] = sample["networks"]
    return frame
