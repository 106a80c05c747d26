"""Asynchronous jobs kept as files, so that another process's sandbox finds them.

The built-in sandbox lives inside each command's process: without this, a job started
by ``run --no-wait`` (or by a workflow run that was then killed) would be gone when
``run --resume-id`` or ``runs retry`` asks for it in the next process, and the real
API keeps results for 24 hours. A job is written as two files named by its id: the
rendered result (``<id>.bin``) and what the results call needs (``<id>.json``: owner,
family, price, media type, seed, and when it is ready and expires, as wall-clock
times because each process's clock starts anew). Only hex ids are ever turned into
file names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

from .media import Media
from .state import Job

__all__ = ["JobFiles"]

_JOB_ID = re.compile(r"[0-9a-f]{1,64}")


class JobFiles:
    """Jobs in ``folder``: written when they start, read by id, gone once expired."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, job: Job, now: float) -> None:
        """Write a job whose result is already rendered (``job.result``)."""
        assert job.result is not None
        if not _JOB_ID.fullmatch(job.id):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prune()
        wall = time.time()
        meta = {
            "owner": job.owner,
            "operation": job.operation,
            "family": job.family,
            "price": job.price,
            "ready_at": wall + (job.ready_at - now),
            "expires_at": wall + (job.expires_at - now),
            "media_type": job.result.media_type,
            "seed": job.result.seed,
            "finish_reason": job.result.finish_reason,
        }
        # The body first, then its description: a reader that finds the .json finds both.
        _write_atomically(self.folder / f"{job.id}.bin", job.result.body)
        _write_atomically(self.folder / f"{job.id}.json", json.dumps(meta).encode())

    def load(self, job_id: str, now: float) -> Job | None:
        """The job with this id, on this process's clock, or None (unknown or expired)."""
        if not _JOB_ID.fullmatch(job_id):
            return None
        try:
            meta = json.loads((self.folder / f"{job_id}.json").read_bytes())
            body = (self.folder / f"{job_id}.bin").read_bytes()
        except (OSError, ValueError):
            return None
        wall = time.time()
        if wall >= meta["expires_at"]:
            self._remove(job_id)
            return None
        media = Media(body, meta["media_type"], meta["seed"], meta["finish_reason"])
        return Job(
            id=job_id,
            owner=meta["owner"],
            operation=meta["operation"],
            family=meta["family"],
            created=now,
            ready_at=now + max(0.0, meta["ready_at"] - wall),
            expires_at=now + (meta["expires_at"] - wall),
            price=meta["price"],
            render=lambda: media,
            result=media,
        )

    def prune(self) -> None:
        """Remove every expired job."""
        wall = time.time()
        for meta_file in self.folder.glob("*.json"):
            try:
                expired = json.loads(meta_file.read_bytes())["expires_at"] <= wall
            except (OSError, ValueError, KeyError, TypeError):
                expired = True
            if expired:
                self._remove(meta_file.stem)

    def _remove(self, job_id: str) -> None:
        for suffix in (".json", ".bin"):
            with contextlib.suppress(OSError):
                (self.folder / f"{job_id}{suffix}").unlink()


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    temp.write_bytes(data)
    os.replace(temp, path)
