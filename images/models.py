"""Image models: pulls and their progress will live here (see docs/runtime.md)."""

from __future__ import annotations
