"""A persistent measurement cache on SQLite, safe for several processes writing at once.

WAL journal + busy timeout let parallel sweep workers share one file; every put is one transaction, so a
worker killed mid-sweep (SIGKILL included) leaves only whole rows. The key covers the model bytes and
everything handed to the compiler (and its version), so a stale figure can never be served.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Self

from edgenas.hardware import _velaconf as vc
from edgenas.hardware.measurement import Measurement
from edgenas.hardware.profile import HardwareProfile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS models (
    fingerprint TEXT PRIMARY KEY,
    digest BLOB NOT NULL,
    figures TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 500  # keys per SELECT ... IN (...), well under SQLite's variable limit


def model_digest(model: bytes) -> bytes:
    return hashlib.sha256(model).digest()


def cache_key(model: bytes, profile: HardwareProfile, *, evaluator: str = "vela", per_layer: bool = True) -> str:
    """sha256 over the model, the compiler's full input text and version, and the whole profile."""
    return cache_key_for_digest(model_digest(model), profile, evaluator=evaluator, per_layer=per_layer)


def cache_key_for_digest(digest: bytes, profile: HardwareProfile, *, evaluator: str = "vela",
                         per_layer: bool = True) -> str:
    """`cache_key` from the model's sha256 (`model_digest`), for a model whose bytes were not written again."""
    h = hashlib.sha256(b"edgenas-measurement-v1\0")
    h.update(digest)
    ini = vc.ini_text(vc.ini_path(profile.vela_config)) if evaluator == "vela" else ""
    h.update(_setup_material(profile, evaluator, per_layer, ini))
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _setup_material(profile: HardwareProfile, evaluator: str, per_layer: bool, ini: str) -> bytes:
    """Everything but the model. Memoised on the profile and the ini file's current text (read afresh by
    the caller), since building the compiler's option text is the slow part of a key."""
    parts = [f"\0evaluator={evaluator}\0".encode()]
    if evaluator == "vela":
        from edgenas.hardware.vela import compiler_options_key  # the compiler is only imported when keyed on

        parts.append(compiler_options_key(profile, per_layer=per_layer).encode())
    parts.append(b"\0" + json.dumps(profile.to_dict(), sort_keys=True).encode())
    return b"".join(parts)


def cacheable(m: Measurement) -> bool:
    """Successes and failures that are properties of the model; not timeouts or crashed workers."""
    return m.ok or not m.retryable


class MeasurementCache:
    """get/put Measurements by key. One connection per process (reopened after fork)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 60.0) -> None:
        self.path = os.fspath(path)
        self.timeout_s = timeout_s
        self._db: sqlite3.Connection | None = None
        self._pid = -1
        self._conn()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            self._retry(lambda: db.execute("PRAGMA journal_mode=WAL"))
            db.execute("PRAGMA synchronous=NORMAL")  # durable against process death; WAL keeps it consistent
            self._retry(lambda: db.executescript(_SCHEMA))
            self._db, self._pid = db, os.getpid()
        return self._db

    def _retry(self, fn: Callable[[], object]) -> None:
        """Schema/journal set-up can report 'locked' before the busy handler applies; retry within timeout."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fn()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @staticmethod
    def _decode(body: bytes) -> Measurement | None:
        try:
            return Measurement.from_json(zlib.decompress(body).decode("utf-8"))
        except (ValueError, TypeError, KeyError, zlib.error):
            return None  # an older schema or a foreign row: a miss, recomputed and replaced

    @staticmethod
    def _encode(m: Measurement) -> bytes:
        return zlib.compress(m.to_json().encode("utf-8"), 6)

    def get(self, key: str) -> Measurement | None:
        row = self._conn().execute("SELECT body FROM measurements WHERE key = ?", (key,)).fetchone()
        return self._decode(row[0]) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, Measurement]:
        """The cached subset of `keys`, in few queries."""
        out: dict[str, Measurement] = {}
        for key, body in self._select_in("SELECT key, body FROM measurements WHERE key", keys):
            m = self._decode(body)
            if m is not None:
                out[key] = m
        return out

    def _select_in(self, query: str, keys: Iterable[str]) -> Iterable[tuple]:
        """Rows of `query IN (keys)`, chunked under SQLite's variable limit."""
        keys = list(dict.fromkeys(keys))
        db = self._conn()
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            yield from db.execute(f"{query} IN ({','.join('?' * len(chunk))})", chunk)

    def _replace(self, table: str, rows: list[tuple]) -> None:
        """INSERT OR REPLACE `rows` into `table` in one transaction."""
        if not rows:
            return
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def put(self, key: str, measurement: Measurement) -> bool:
        """Store (replacing any older row); False when the measurement must not be cached."""
        return self.put_many([(key, measurement)]) == 1

    def put_many(self, items: Iterable[tuple[str, Measurement]]) -> int:
        """Store several in one transaction; returns how many were cacheable and stored."""
        rows = [(k, m.status, self._encode(m), time.time()) for k, m in items if cacheable(m)]
        self._replace("measurements", rows)
        return len(rows)

    # ---- the model memo: what a model's bytes hash to, without writing them again -------------------
    def get_models(self, fingerprints: Iterable[str]) -> dict[str, tuple[bytes, dict]]:
        """fingerprint -> (model digest, figures) for the known subset of `fingerprints` (see
        `tflite.writer.model_fingerprint`): a cached row then costs a lookup, not a model build."""
        out: dict[str, tuple[bytes, dict]] = {}
        for fp, digest, figures in self._select_in("SELECT fingerprint, digest, figures FROM models WHERE fingerprint",
                                                   fingerprints):
            try:
                out[fp] = (bytes(digest), json.loads(figures))
            except ValueError:
                continue  # a damaged row: a miss, rewritten by the next build
        return out

    def put_models(self, items: Iterable[tuple[str, bytes, dict]]) -> None:
        """Store (fingerprint, model digest, figures) rows in one transaction."""
        now = time.time()
        self._replace("models", [(fp, digest, json.dumps(figures, sort_keys=True), now)
                                 for fp, digest, figures in items])

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        row = self._conn().execute("SELECT 1 FROM measurements WHERE key = ?", (key,)).fetchone()
        return row is not None

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
