"""The one error every inventory parser raises."""

from __future__ import annotations


class InventoryParseError(ValueError):
    """A package list could not be parsed; nothing partial is returned.

    The message names the format and, where known, the line and the field at fault,
    so that a user who uploaded the file can find the problem.
    """

    def __init__(
        self,
        message: str,
        *,
        fmt: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.fmt = fmt
        self.line = line
        self.field = field
        self.reason = message
        where = []
        if fmt:
            where.append(fmt)
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(": ".join([*where, message]) if where else message)
