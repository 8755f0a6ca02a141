"""Atomic output files: a reader (or a batch rerun after a kill) sees either the old file
or the complete new one, never a half-written one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that infer the format
    from it still work) that replaces ``path`` with ``os.replace`` when the block ends
    without an error, and is removed when it raises."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """``frame.to_csv(path, index=False)``, atomically; returns the path."""
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
