"""Where a search lives: Optuna's RDB storage (an SQLite file, or PostgreSQL for many machines) and, in the
same database, the measurements of every (architecture, resolution, device, evaluator) already evaluated.

Measurements are claimed before they are run: a worker inserts a `running` row and keeps its heartbeat
fresh while it evaluates; another worker that wants the same measurement waits for it instead of running
it again, and takes the claim over only when the heartbeat has gone stale (its owner was killed). So no
candidate is measured twice, also across machines, and a killed worker's half-done measurement is redone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from edgenas.errors import ConfigError

MEASUREMENTS = "edgenas_measurements"
EVALUATIONS = "edgenas_evaluations"
WORKERS = "edgenas_workers"

_meta = sa.MetaData()
measurements_table = sa.Table(
    MEASUREMENTS, _meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("arch_id", sa.String(64), nullable=False, index=True),
    sa.Column("genotype", sa.Text, nullable=False),
    sa.Column("resolution", sa.String(32), nullable=False),
    sa.Column("hardware", sa.String(255), nullable=False),
    sa.Column("evaluator", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # running | done
    sa.Column("status", sa.String(16)),  # ok | failed (when done)
    sa.Column("metrics", sa.Text),  # JSON object
    sa.Column("error", sa.Text),
    sa.Column("owner", sa.String(64)),  # claim token of the worker measuring it
    sa.Column("heartbeat", sa.DateTime),  # database clock, refreshed while measuring
    sa.Column("created", sa.DateTime),
    sa.Column("finished", sa.DateTime),
)
# One row per evaluator run actually started (not per lookup): the audit that nothing ran twice.
evaluations_table = sa.Table(
    EVALUATIONS, _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, index=True),
    sa.Column("arch_id", sa.String(64), nullable=False),
    sa.Column("evaluator", sa.String(255), nullable=False),
    sa.Column("study", sa.String(512)),
    sa.Column("trial_number", sa.Integer),
    sa.Column("worker", sa.String(255)),
    sa.Column("started", sa.DateTime),
    sa.Column("finished", sa.DateTime),
    sa.Column("outcome", sa.String(32)),  # ok | failed | retryable | aborted | lost-claim
)
workers_table = sa.Table(
    WORKERS, _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study", sa.String(512), nullable=False, index=True),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("seed", sa.BigInteger),
    sa.Column("started", sa.DateTime),
)


# ---- storage URLs ---------------------------------------------------------------------------------------------


def default_storage_url(study_name: str, runs_dir: str | os.PathLike[str] = "runs") -> str:
    return sqlite_url(Path(runs_dir) / study_name / "study.db")


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return "sqlite:///" + str(Path(path).expanduser().resolve())


def normalise_storage_url(url: str) -> str:
    """postgresql:// and postgres:// use the psycopg (3) driver; a bare path is an SQLite file."""
    u = url.strip()
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if u.startswith(prefix):
            return "postgresql+psycopg://" + u[len(prefix):]
    if "://" not in u:
        return sqlite_url(u)
    return u


def redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {"pool_pre_ping": True}


def _sqlite_wal(engine: sa.engine.Engine) -> None:
    """WAL journal and synchronous=NORMAL: a commit no longer waits for the disk (a trial makes a dozen), and
    the file stays consistent when a worker is killed; only a power cut may lose the last few commits."""

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        finally:
            cur.close()

    engine.dispose()  # connections made before the listener reconnect with it


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def open_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int | None = 3) -> Any:
    """Optuna's RDBStorage on `url` with worker heartbeats: a trial whose worker stops beating for
    `grace_period` seconds is failed (by the next worker that starts a trial) and queued again, at most
    `max_retry` times. An unreachable database is a one-line ConfigError."""
    import optuna
    from optuna.storages import RDBStorage

    url = normalise_storage_url(url)
    if url.startswith("sqlite:///"):
        db_path = url[len("sqlite:///"):]
        if db_path and db_path != ":memory:":
            try:
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cannot create the folder of storage {redact(url)} ({e.strerror})",
                                  field="--storage") from None
    kwargs: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if heartbeat_interval:
            try:
                from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry  # optuna >= 4.9

                kwargs["heartbeat_stale_trial_callback"] = Retry(max_retry=max_retry)
            except ImportError:  # older optuna
                from optuna.storages import RetryFailedTrialCallback as Retry  # type: ignore[no-redef]

                kwargs["failed_trial_callback"] = Retry(max_retry=max_retry)
            kwargs.update(heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            storage = RDBStorage(url, engine_kwargs=_engine_kwargs(url), **kwargs)
        if url.startswith("sqlite"):
            _sqlite_wal(storage.engine)
        return storage
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.ArgumentError, sa_exc.NoSuchModuleError,
            sa_exc.DatabaseError, ImportError, ValueError) as e:
        raise ConfigError(f"cannot reach storage {redact(url)}: {_first_line(e)}", field="--storage") from None


# ---- the measurement store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasurementKey:
    arch_id: str
    genotype: str
    resolution: str
    hardware: str  # profile name @ digest of every field
    evaluator: str  # stage name : evaluator fingerprint

    @property
    def key(self) -> str:
        blob = "\0".join((self.arch_id, self.resolution, self.hardware, self.evaluator))
        return hashlib.sha256(blob.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Record:
    """A finished measurement: metrics when status is ok, else the error."""

    key: str
    status: str
    metrics: dict[str, Any]
    error: str | None


@dataclass
class Claim:
    key: MeasurementKey
    token: str
    log_id: int | None
    stolen_from: str | None = None


def _json_safe(metrics: Mapping[str, Any]) -> str:
    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)  # 'inf' / '-inf': plain JSON has no infinities
        return v
    return json.dumps({k: fix(v) for k, v in metrics.items()}, sort_keys=True)


def _json_load(text: str | None) -> dict[str, Any]:
    out = json.loads(text) if text else {}
    return {k: float(v) if v in ("inf", "-inf", "nan") else v for k, v in out.items()}


class MeasurementStore:
    """Measurements by (arch_id, resolution, hardware, evaluator) in the study's database, with claims."""

    def __init__(self, engine: sa.engine.Engine, *, heartbeat_interval: float = 10.0, grace_period: float = 30.0,
                 max_wait_s: float = 7 * 24 * 3600.0, poll_s: float = 0.2) -> None:
        self.engine = engine
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._create_tables()

    def _create_tables(self) -> None:
        # Two workers starting at once may both try to create the tables; PostgreSQL then reports a
        # duplicate type or relation. The second attempt finds them.
        for attempt in range(5):
            try:
                _meta.create_all(self.engine, checkfirst=True)
                return
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.OperationalError):
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def db_now(self) -> dt.datetime:
        with self.engine.connect() as c:
            now = c.execute(sa.select(sa.func.now())).scalar()
        if isinstance(now, str):  # SQLite without type information
            now = dt.datetime.fromisoformat(now)
        return now.replace(tzinfo=None)

    # -- reads
    def get(self, key: MeasurementKey) -> Record | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(measurements_table).where(measurements_table.c.key == key.key)).first()
        if row is None or row.state != "done":
            return None
        return Record(row.key, row.status, _json_load(row.metrics), row.error)

    def count_done(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(measurements_table)
                                 .where(measurements_table.c.state == "done")).scalar() or 0)

    # -- claims
    def acquire(self, key: MeasurementKey, *, study: str | None = None, trial_number: int | None = None,
                on_wait: Callable[[], None] | None = None) -> Record | Claim:
        """The finished record, or a claim to measure it now. Waits while another live worker measures it."""
        t = measurements_table
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.max_wait_s
        while True:
            with self.engine.connect() as c:
                row = c.execute(sa.select(t).where(t.c.key == key.key)).first()
            if row is None:
                try:
                    with self.engine.begin() as c:
                        c.execute(sa.insert(t).values(
                            key=key.key, arch_id=key.arch_id, genotype=key.genotype, resolution=key.resolution,
                            hardware=key.hardware, evaluator=key.evaluator, state="running", owner=token,
                            heartbeat=sa.func.now(), created=sa.func.now()))
                except sa_exc.IntegrityError:
                    continue  # another worker claimed it first: look again
                return Claim(key, token, self._log_start(key, study, trial_number))
            if row.state == "done":
                return Record(row.key, row.status, _json_load(row.metrics), row.error)
            beat = row.heartbeat
            if isinstance(beat, str):
                beat = dt.datetime.fromisoformat(beat)
            if beat is None or self.db_now() - beat.replace(tzinfo=None) > dt.timedelta(seconds=self.grace_period):
                with self.engine.begin() as c:
                    res = c.execute(sa.update(t).where(t.c.key == key.key, t.c.state == "running",
                                                       t.c.owner == row.owner)
                                    .values(owner=token, heartbeat=sa.func.now()))
                if res.rowcount == 1:
                    return Claim(key, token, self._log_start(key, study, trial_number), stolen_from=row.owner)
                continue
            if time.monotonic() > deadline:
                from edgenas.search.evaluators import EvaluationFailed

                raise EvaluationFailed(f"waited {self.max_wait_s:.0f} s for another worker measuring it",
                                       retryable=True)
            if on_wait is not None:
                on_wait()
            time.sleep(self.poll_s)

    def _log_start(self, key: MeasurementKey, study: str | None, trial_number: int | None) -> int | None:
        with self.engine.begin() as c:
            res = c.execute(sa.insert(evaluations_table).values(
                key=key.key, arch_id=key.arch_id, evaluator=key.evaluator, study=study, trial_number=trial_number,
                worker=self.worker, started=sa.func.now()))
            pk = res.inserted_primary_key
        return int(pk[0]) if pk else None

    def _log_end(self, claim: Claim, outcome: str) -> None:
        if claim.log_id is None:
            return
        with self.engine.begin() as c:
            c.execute(sa.update(evaluations_table).where(evaluations_table.c.id == claim.log_id)
                      .values(finished=sa.func.now(), outcome=outcome))

    def beat(self, claim: Claim) -> bool:
        """Refresh the claim's heartbeat; False when the claim was taken over."""
        t = measurements_table
        with self.engine.begin() as c:
            res = c.execute(sa.update(t).where(t.c.key == claim.key.key, t.c.owner == claim.token,
                                               t.c.state == "running").values(heartbeat=sa.func.now()))
        return res.rowcount == 1

    @contextmanager
    def heartbeat(self, claim: Claim) -> Iterator[None]:
        """Keep the claim alive from a thread while the body measures."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.heartbeat_interval):
                try:
                    self.beat(claim)
                except sa_exc.SQLAlchemyError:
                    pass  # a lost beat: the next one may go through; a long outage lets another worker take over

        th = threading.Thread(target=run, name="edgenas-claim-heartbeat", daemon=True)
        th.start()
        try:
            yield
        finally:
            stop.set()
            th.join()

    def finish(self, claim: Claim, status: str, metrics: Mapping[str, Any], error: str | None) -> bool:
        """Store the result; False when the claim was taken over meanwhile (the other result stands)."""
        t = measurements_table
        with self.engine.begin() as c:
            res = c.execute(sa.update(t).where(t.c.key == claim.key.key, t.c.owner == claim.token,
                                               t.c.state == "running")
                            .values(state="done", status=status, metrics=_json_safe(metrics), error=error,
                                    heartbeat=sa.func.now(), finished=sa.func.now()))
        ok = res.rowcount == 1
        self._log_end(claim, status if ok else "lost-claim")
        return ok

    def abandon(self, claim: Claim, outcome: str) -> None:
        """Give the claim up without a result (a retryable failure, an interrupt): the next asker measures."""
        t = measurements_table
        with self.engine.begin() as c:
            c.execute(sa.delete(t).where(t.c.key == claim.key.key, t.c.owner == claim.token,
                                         t.c.state == "running"))
        self._log_end(claim, outcome)

    # -- workers
    def register_worker(self, study: str) -> tuple[int, int]:
        """(row id, index): this process's index among the sessions that ever worked on `study` (0 for the
        first), from the database's own counter, so concurrent workers get different indices."""
        w = workers_table
        with self.engine.begin() as c:
            res = c.execute(sa.insert(w).values(study=study, host=socket.gethostname(), pid=os.getpid(),
                                                started=sa.func.now()))
            my_id = int(res.inserted_primary_key[0])
        with self.engine.connect() as c:
            index = int(c.execute(sa.select(sa.func.count()).select_from(w)
                                  .where(w.c.study == study, w.c.id < my_id)).scalar() or 0)
        return my_id, index

    def set_worker_seed(self, worker_id: int, seed: int) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(workers_table).where(workers_table.c.id == worker_id).values(seed=seed))


def engine_of(storage: Any) -> sa.engine.Engine:
    """The SQLAlchemy engine of an Optuna RDBStorage (possibly behind Optuna's cache wrapper)."""
    inner = getattr(storage, "_backend", storage)
    return inner.engine
