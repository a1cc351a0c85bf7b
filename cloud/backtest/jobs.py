"""Backtests running in the API process: each on a thread of its own, polled by id.

Jobs live in memory, in the process that started them: a restart forgets them, and with several hub
processes behind a balancer a poll must reach the process that took the job (the answer is 404 elsewhere).
At most `max_running` run at once (a backtest takes a core for minutes; the caller is told to come back
later, 429); the last `keep_finished` finished ones are kept for polling, older ones are forgotten.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from cloud.backtest.run import Progress

log = logging.getLogger(__name__)

Status = Literal["running", "done", "failed"]
Work = Callable[[Progress], dict[str, Any]]


@dataclass(slots=True)
class Job:
    job_id: str
    started_at: datetime
    status: Status = "running"
    sales_done: int = 0
    sales_total: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    finished_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        """What a poll answers: a copy, taken under the registry's lock."""
        return {"job_id": self.job_id, "status": self.status, "started_at": self.started_at,
                "finished_at": self.finished_at,
                "progress": {"sales_done": self.sales_done, "sales_total": self.sales_total},
                "result": self.result, "error": self.error}


class BacktestJobs:
    """The registry: a dict of jobs under one lock."""

    def __init__(self, *, max_running: int = 2, keep_finished: int = 20) -> None:
        self.max_running, self.keep_finished = max_running, keep_finished
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def start(self, work: Work) -> dict[str, Any] | None:
        """Run `work` on a new thread; its job's view, or None when `max_running` jobs are running already."""
        with self._lock:
            if sum(job.status == "running" for job in self._jobs.values()) >= self.max_running:
                return None
            job = Job(uuid.uuid4().hex, datetime.now(UTC))
            self._jobs[job.job_id] = job
            view = job.view()
        thread = threading.Thread(target=self._run, args=(job, work), name=f"backtest-{job.job_id[:8]}", daemon=True)
        thread.start()
        return view

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.view()

    def _progress(self, job: Job) -> Progress:
        def report(done: int, total: int) -> None:
            with self._lock:
                job.sales_done, job.sales_total = done, total
        return report

    def _run(self, job: Job, work: Work) -> None:
        log.info("backtest %s started", job.job_id)
        try:
            result = work(self._progress(job))
        except ValidationError as exc:  # a stored bundle this hub cannot read: where and what, never the values
            log.error("backtest %s failed: a stored document is not valid (%s)", job.job_id, "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_url=False)[:10]))
            self._finish(job, "failed", error="the backtest failed: a stored rule bundle is not readable by this hub")
            return
        except Exception:  # the top of a long-running task: the job fails, the process goes on
            log.exception("backtest %s failed", job.job_id)
            self._finish(job, "failed", error="the backtest failed; the hub's log says why")
            return
        log.info("backtest %s done: %d sales", job.job_id, job.sales_done)
        self._finish(job, "done", result=result)

    def _finish(self, job: Job, status: Status, *, result: dict[str, Any] | None = None,
                error: str | None = None) -> None:
        with self._lock:
            job.status, job.result, job.error, job.finished_at = status, result, error, datetime.now(UTC)
            finished = [each.job_id for each in self._jobs.values() if each.status != "running"]
            for job_id in finished[:max(0, len(finished) - self.keep_finished)]:
                del self._jobs[job_id]
