"""What one layer may unpack to (tar-bomb guards), in a module of its own: the settings read
the defaults at start-up without importing the pull machinery (registry client, store)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerLimits:
    """Caps on what one layer may contain; ``None`` means no cap."""

    max_entries: int | None = None
    max_bytes: int | None = None  # sum of regular files' sizes
    # unpacked bytes per compressed byte, past ratio_floor unpacked bytes; apply_layer sees
    # only the tar, so pull enforces these two
    max_ratio: float | None = None
    ratio_floor: int | None = None


#: What one layer may unpack to unless the caller says otherwise: real layers stay far below
#: these; a hostile one is stopped before it fills the disk or the inode table.
#: ``max_ratio`` only applies past ``ratio_floor`` unpacked bytes.
DEFAULT_LAYER_LIMITS = LayerLimits(
    max_entries=500_000,
    max_bytes=64 << 30,
    max_ratio=200.0,
    ratio_floor=256 << 20,
)
