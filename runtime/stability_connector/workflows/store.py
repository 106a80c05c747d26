"""The run store: one SQLite file holding runs, steps, loop items, attempts, outputs,
job ids and the run log.

Every state change is its own committed transaction, written the moment it happens, so a
process killed at any point (even ``kill -9``) loses nothing that had finished: a
succeeded item is on disk before the next item can read its outputs, and an async job's
id is on disk before its first poll. WAL mode keeps readers (``runs show`` in another
terminal) from blocking the runner. ``synchronous=NORMAL`` in WAL mode is durable across
process crashes (only a power cut can lose the last commits), which keeps a 300-item loop
from waiting on an fsync per state change.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from stability_connector.errors import ConnectorError

SCHEMA_VERSION = 1
DB_ENV = "STABILITY_CONNECTOR_DB"

_SCHEMA = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    file TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    trigger_json TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | paused | succeeded
    error_json TEXT,
    budget REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    pid INTEGER,
    host TEXT
);
CREATE TABLE steps (
    run_id TEXT NOT NULL REFERENCES runs(id),
    step_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    action TEXT NOT NULL,
    is_loop INTEGER NOT NULL,
    status TEXT NOT NULL,            -- pending | running | succeeded | failed
    error_json TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, step_id)
);
-- One row per execution of a node: loop items by index, a plain step as index -1.
CREATE TABLE items (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    status TEXT NOT NULL,            -- pending | running | succeeded | failed
    item_json TEXT,
    outputs_json TEXT,
    job_id TEXT,
    credits REAL,
    error_json TEXT,
    sends INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, step_id, item_index)
);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    at REAL NOT NULL,
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    duration REAL NOT NULL,
    error TEXT,
    wait_before_next REAL,
    may_have_been_charged INTEGER NOT NULL,
    request_id TEXT
);
CREATE INDEX attempts_by_run ON attempts (run_id, step_id, item_index);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    level TEXT NOT NULL,             -- info | warning | error
    step_id TEXT,
    item_index INTEGER,
    message TEXT NOT NULL,
    data_json TEXT
);
CREATE INDEX events_by_run ON events (run_id);
"""

PLAIN = -1
"""The item index of a step without for_each."""


class StoreError(ConnectorError):
    """The run store cannot be used (wrong file, newer schema, unknown run)."""


def default_db_path(env: Mapping[str, str] = os.environ) -> Path:
    """``STABILITY_CONNECTOR_DB`` if set, else ``runs.sqlite3`` in the user's data directory."""
    if env.get(DB_ENV):
        return Path(env[DB_ENV]).expanduser()
    return Path(platformdirs.user_data_dir("stability-connector")) / "runs.sqlite3"


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class RunRow:
    id: str
    workflow: str
    file: str
    spec: dict[str, Any]
    trigger: Any
    status: str
    error: dict[str, Any] | None
    budget: float | None
    created_at: float
    updated_at: float
    pid: int | None
    host: str | None

    @property
    def alive_elsewhere(self) -> bool:
        """A process on this machine is executing the run right now."""
        return (
            self.status == "running"
            and self.pid is not None
            and self.host == socket.gethostname()
            and self.pid != os.getpid()
            and _pid_alive(self.pid)
        )

    @property
    def shown_status(self) -> str:
        """``interrupted`` for a run whose process died while it was running."""
        if self.status == "running" and not self.alive_elsewhere and self.pid != os.getpid():
            return "interrupted"
        return self.status


@dataclass(frozen=True)
class StepRow:
    step_id: str
    position: int
    action: str
    is_loop: bool
    status: str
    error: dict[str, Any] | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class ItemRow:
    step_id: str
    index: int
    status: str
    item: Any
    outputs: dict[str, Any] | None
    job_id: str | None
    credits: float | None
    error: dict[str, Any] | None
    sends: int
    started_at: float | None
    finished_at: float | None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Store:
    """The run store. One instance per process and thread; other processes may open the
    same file at the same time (WAL, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit: every statement outside `transaction()` commits on its own.
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable run store ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer stability-connector (schema {version}, "
                f"this one knows {SCHEMA_VERSION}); upgrade, or use another --db"
            )
        if version == 0:
            with self.transaction():
                # Checked again under the write lock: another process may have just done it.
                if self._db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group statements that must land together (one commit)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- runs --------------------------------------------------------------------------

    def create_run(
        self,
        *,
        workflow: str,
        file: str,
        spec: Mapping[str, Any],
        trigger: Any,
        budget: float | None,
        steps: list[tuple[str, str, bool]],
    ) -> str:
        """A new run with its steps (id, action, is_loop), all pending, owned by this process."""
        run_id = new_run_id()
        now = time.time()
        with self.transaction():
            self._db.execute(
                "INSERT INTO runs (id, workflow, file, spec_json, trigger_json, status, budget,"
                " created_at, updated_at, pid, host) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    workflow,
                    file,
                    _dumps(spec),
                    _dumps(trigger),
                    "running",
                    budget,
                    now,
                    now,
                    os.getpid(),
                    socket.gethostname(),
                ),
            )
            self._db.executemany(
                "INSERT INTO steps (run_id, step_id, position, action, is_loop, status)"
                " VALUES (?,?,?,?,?,'pending')",
                [
                    (run_id, step_id, position, action, int(is_loop))
                    for position, (step_id, action, is_loop) in enumerate(steps)
                ],
            )
        return run_id

    def claim_run(self, run_id: str) -> RunRow:
        """Take over a run for resuming: refused while another live process runs it."""
        with self.transaction():
            run = self.run(run_id)
            if run.alive_elsewhere:
                raise StoreError(
                    f"run {run_id} is still running (process {run.pid}); wait for it to pause"
                )
            self._db.execute(
                "UPDATE runs SET status='running', error_json=NULL, pid=?, host=?, updated_at=?"
                " WHERE id=?",
                (os.getpid(), socket.gethostname(), time.time(), run_id),
            )
        return self.run(run_id)

    def set_run_status(
        self, run_id: str, status: str, error: Mapping[str, Any] | None = None
    ) -> None:
        self._db.execute(
            "UPDATE runs SET status=?, error_json=?, updated_at=? WHERE id=?",
            (status, None if error is None else _dumps(error), time.time(), run_id),
        )

    def set_budget(self, run_id: str, credits: float | None) -> None:
        self._db.execute("UPDATE runs SET budget=? WHERE id=?", (credits, run_id))

    def replace_definition(
        self,
        run_id: str,
        *,
        workflow: str,
        file: str,
        spec: Mapping[str, Any],
        budget: float | None,
        steps: list[tuple[str, str, bool]],
        reset: set[str],
    ) -> None:
        """Store a corrected definition for a run, in one transaction: the steps become
        ``steps`` (id, action, is_loop) in that order, keeping the state of those that
        stay; a step that is gone loses its items; a step in ``reset`` loses the items
        that did not succeed (they are made again from the new definition). Succeeded
        items are never touched. The attempts and events stay: they are what happened."""
        new_ids = [step_id for step_id, _, _ in steps]
        with self.transaction():
            self._db.execute(
                "UPDATE runs SET workflow=?, file=?, spec_json=?, budget=?, updated_at=?"
                " WHERE id=?",
                (workflow, file, _dumps(spec), budget, time.time(), run_id),
            )
            for row in self.steps(run_id):
                if row.step_id not in new_ids:
                    self._db.execute(
                        "DELETE FROM items WHERE run_id=? AND step_id=?", (run_id, row.step_id)
                    )
                    self._db.execute(
                        "DELETE FROM steps WHERE run_id=? AND step_id=?", (run_id, row.step_id)
                    )
            for position, (step_id, action, is_loop) in enumerate(steps):
                self._db.execute(
                    "INSERT INTO steps (run_id, step_id, position, action, is_loop, status)"
                    " VALUES (?,?,?,?,?,'pending') ON CONFLICT (run_id, step_id) DO UPDATE"
                    " SET position=excluded.position, action=excluded.action,"
                    " is_loop=excluded.is_loop",
                    (run_id, step_id, position, action, int(is_loop)),
                )
                if step_id in reset:
                    self._db.execute(
                        "DELETE FROM items WHERE run_id=? AND step_id=? AND status!='succeeded'",
                        (run_id, step_id),
                    )

    def run(self, run_id: str) -> RunRow:
        row = self._db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path} (see `runs list`)")
        return self._run_row(row)

    def runs(self, limit: int = 50) -> list[RunRow]:
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._run_row(r) for r in rows]

    def _run_row(self, row: tuple[Any, ...]) -> RunRow:
        (rid, workflow, file, spec, trigger, status, error, budget, created, updated, pid, host) = (
            row
        )
        return RunRow(
            id=rid,
            workflow=workflow,
            file=file,
            spec=_loads(spec),
            trigger=_loads(trigger),
            status=status,
            error=_loads(error),
            budget=budget,
            created_at=created,
            updated_at=updated,
            pid=pid,
            host=host,
        )

    # --- steps -------------------------------------------------------------------------

    def set_step_status(
        self, run_id: str, step_id: str, status: str, error: Mapping[str, Any] | None = None
    ) -> None:
        now = time.time()
        finished = now if status in ("succeeded", "failed") else None
        self._db.execute(
            "UPDATE steps SET status=?, error_json=?, finished_at=?,"
            " started_at=COALESCE(started_at, ?) WHERE run_id=? AND step_id=?",
            (status, None if error is None else _dumps(error), finished, now, run_id, step_id),
        )

    def steps(self, run_id: str) -> list[StepRow]:
        rows = self._db.execute(
            "SELECT step_id, position, action, is_loop, status, error_json, started_at,"
            " finished_at FROM steps WHERE run_id=? ORDER BY position",
            (run_id,),
        ).fetchall()
        return [
            StepRow(sid, pos, action, bool(loop), status, _loads(err), started, finished)
            for sid, pos, action, loop, status, err, started, finished in rows
        ]

    # --- items -------------------------------------------------------------------------

    def ensure_items(self, run_id: str, step_id: str, items: list[Any] | None) -> None:
        """The step's items, pending unless already recorded (a resumed run keeps its own).
        ``items=None``: a plain step (one item, index -1)."""
        rows = (
            [(run_id, step_id, PLAIN, None)]
            if items is None
            else [(run_id, step_id, i, _dumps(item)) for i, item in enumerate(items)]
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO items (run_id, step_id, item_index, status, item_json)"
            " VALUES (?,?,?,'pending',?)",
            rows,
        )

    def item_started(self, run_id: str, step_id: str, index: int) -> None:
        self._db.execute(
            "UPDATE items SET status='running', error_json=NULL, sends=sends+1, started_at=?"
            " WHERE run_id=? AND step_id=? AND item_index=?",
            (time.time(), run_id, step_id, index),
        )

    def item_job_started(self, run_id: str, step_id: str, index: int, job_id: str) -> None:
        self._db.execute(
            "UPDATE items SET job_id=? WHERE run_id=? AND step_id=? AND item_index=?",
            (job_id, run_id, step_id, index),
        )

    def item_succeeded(
        self,
        run_id: str,
        step_id: str,
        index: int,
        outputs: Mapping[str, Any],
        credits: float | None,
    ) -> None:
        self._db.execute(
            "UPDATE items SET status='succeeded', outputs_json=?, credits=?, error_json=NULL,"
            " finished_at=? WHERE run_id=? AND step_id=? AND item_index=?",
            (_dumps(outputs), credits, time.time(), run_id, step_id, index),
        )

    def item_failed(self, run_id: str, step_id: str, index: int, error: Mapping[str, Any]) -> None:
        self._db.execute(
            "UPDATE items SET status='failed', error_json=?, finished_at=?"
            " WHERE run_id=? AND step_id=? AND item_index=?",
            (_dumps(error), time.time(), run_id, step_id, index),
        )

    def items(self, run_id: str, step_id: str | None = None) -> list[ItemRow]:
        query = (
            "SELECT step_id, item_index, status, item_json, outputs_json, job_id, credits,"
            " error_json, sends, started_at, finished_at FROM items WHERE run_id=?"
        )
        args: tuple[Any, ...] = (run_id,)
        if step_id is not None:
            query += " AND step_id=?"
            args += (step_id,)
        rows = self._db.execute(query + " ORDER BY step_id, item_index", args).fetchall()
        return [
            ItemRow(
                sid,
                idx,
                status,
                _loads(item),
                _loads(out),
                job,
                credits,
                _loads(err),
                sends,
                started,
                finished,
            )
            for sid, idx, status, item, out, job, credits, err, sends, started, finished in rows
        ]

    def spent(self, run_id: str) -> float:
        """Credits charged by the run's succeeded items so far."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(credits), 0) FROM items WHERE run_id=? AND status='succeeded'",
            (run_id,),
        ).fetchone()
        return float(row[0])

    # --- run log -----------------------------------------------------------------------

    def add_attempt(self, run_id: str, step_id: str, index: int, attempt: Any) -> None:
        """One HTTP attempt (a ``transport.Attempt``) as it happened."""
        self._db.execute(
            "INSERT INTO attempts (run_id, step_id, item_index, at, number, kind, method, path,"
            " status, duration, error, wait_before_next, may_have_been_charged, request_id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                step_id,
                index,
                time.time(),
                attempt.number,
                attempt.kind,
                attempt.method,
                attempt.path,
                attempt.status,
                attempt.duration,
                attempt.error,
                attempt.wait_before_next,
                int(bool(attempt.may_have_been_charged)),
                attempt.request_id,
            ),
        )

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        cursor = self._db.execute(
            "SELECT step_id, item_index, at, number, kind, method, path, status, duration, error,"
            " wait_before_next, may_have_been_charged, request_id FROM attempts WHERE run_id=?"
            " ORDER BY id",
            (run_id,),
        )
        names = [d[0] for d in cursor.description]
        out = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in out:
            row["may_have_been_charged"] = bool(row["may_have_been_charged"])
        return out

    def add_event(
        self,
        run_id: str,
        message: str,
        *,
        level: str = "info",
        step_id: str | None = None,
        index: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO events (run_id, at, level, step_id, item_index, message, data_json)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                run_id,
                time.time(),
                level,
                step_id,
                index,
                message,
                None if data is None else _dumps(data),
            ),
        )

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT at, level, step_id, item_index, message, data_json FROM events"
            " WHERE run_id=? ORDER BY id",
            (run_id,),
        ).fetchall()
        return [
            {
                "at": at,
                "level": level,
                "step": step,
                "item": index,
                "message": message,
                "data": _loads(data),
            }
            for at, level, step, index, message, data in rows
        ]
