"""Files written whole or not at all: each write goes to a temporary file beside the target (the same folder,
so the rename is atomic), which replaces the target only once it is complete and is removed if the write
fails, so a killed or failing writer never leaves a half-written file under the final name.

Written here rather than taken from PyPI: the package for this (`atomicwrites`) is archived, and what every
writer of edgenas needs is the dozen lines below. Temporary names start with a dot and end in `.tmp`
(`.NAME.<pid>.<random>.tmp`): hidden in listings, unique per process and call, and created with the
default permissions (`tempfile.mkstemp` would make them private to the owner).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replacing", "write_bytes", "write_text"]


@contextmanager
def replacing(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write the file to; when the block ends the file replaces `path`
    (flushed to disk first when `fsync`), and if the block raises the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str, *, fsync: bool = False) -> None:
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> None:
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
