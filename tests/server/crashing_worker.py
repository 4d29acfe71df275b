"""A worker target that exits at once; a module of its own so that the spawned child imports nothing else."""

from typing import Any


def crash(*_args: Any) -> None:
    raise SystemExit(3)
