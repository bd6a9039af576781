"""Container models: specs and states will live here (see docs/runtime.md)."""

from __future__ import annotations
