"""URL converters the apps' URL maps share (registered when this module is imported)."""

from __future__ import annotations

from django.urls import register_converter


class RowId:
    """``<id:pk>``: a database row id, at most 18 digits. Django's ``<int:...>`` takes any
    number of digits, and a 30-digit id reached the database (SQLite: OverflowError, a
    500); a longer one here is no route, a 404."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(RowId, "id")
