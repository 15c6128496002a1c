"""Concurrent requests merged into one model call.

HTTP handler threads each `submit` their requests and block; one worker thread takes
everything that is waiting (up to `max_batch_size` requests), groups it by sampling
parameters (a model call takes one `SamplingParams`) and makes one `chat` call per group.
While the model is busy new requests queue up, so under load every call is as full as
the requests allow. When the model was idle the worker waits `gather_s` after the first
arrival so that requests sent together are batched together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentwheel.core.messages import ChatRequest, Completion, SamplingParams
from agentwheel.llm.types import ChatModel


class BatcherClosed(RuntimeError):
    """The batcher was closed before the request was answered."""


@dataclass
class _Job:
    requests: list[ChatRequest]
    params: SamplingParams
    done: threading.Event = field(default_factory=threading.Event)
    completions: list[Completion] | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """Model calls made and requests answered, for tests and benchmarks."""

    calls: int = 0
    requests: int = 0
    largest_call: int = 0


class RequestBatcher:
    """Answers `submit` calls from many threads with as few `model.chat` calls as possible."""

    def __init__(self, model: ChatModel, max_batch_size: int = 32, gather_s: float = 0.005):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.model = model
        self.max_batch_size = max_batch_size
        self.gather_s = gather_s
        self.stats = BatchStats()
        self._pending: list[_Job] = []
        self._closed = False
        self._wakeup = threading.Condition()
        self._worker = threading.Thread(target=self._run, name="request-batcher", daemon=True)
        self._worker.start()

    def submit(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        """One completion per request, in order, once a model call has answered them.
        Raises what the model call raised, or `BatcherClosed`."""
        job = _Job(list(requests), params)
        with self._wakeup:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._pending.append(job)
            self._wakeup.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.completions is not None
        return job.completions

    def close(self) -> None:
        """Answer what is queued, then stop the worker."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        self._worker.join()

    def _run(self) -> None:
        while True:
            jobs = self._next_jobs()
            if not jobs:
                return
            for params, group in _by_params(jobs).items():
                self._answer(group, params)

    def _next_jobs(self) -> list[_Job]:
        with self._wakeup:
            while not self._pending and not self._closed:
                self._wakeup.wait()
            deadline = time.monotonic() + self.gather_s
            while not self._closed and _size(self._pending) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.wait(remaining)
            taken: list[_Job] = []
            # Whole jobs only (a request's n choices stay together); at least one job.
            while self._pending and (
                not taken or _size(taken) + len(self._pending[0].requests) <= self.max_batch_size
            ):
                taken.append(self._pending.pop(0))
            return taken

    def _answer(self, jobs: list[_Job], params: SamplingParams) -> None:
        requests = [request for job in jobs for request in job.requests]
        try:
            completions = self.model.chat(requests, params)
        except Exception as exc:  # the model's failure is each waiting request's 500
            for job in jobs:
                job.error = exc
                job.done.set()
            return
        self.stats.calls += 1
        self.stats.requests += len(requests)
        self.stats.largest_call = max(self.stats.largest_call, len(requests))
        start = 0
        for job in jobs:
            job.completions = completions[start : start + len(job.requests)]
            start += len(job.requests)
            job.done.set()


def _size(jobs: list[_Job]) -> int:
    return sum(len(job.requests) for job in jobs)


def _by_params(jobs: list[_Job]) -> dict[SamplingParams, list[_Job]]:
    groups: dict[SamplingParams, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.params, []).append(job)
    return groups
