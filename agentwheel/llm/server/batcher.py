"""Concurrent requests merged into one model call.

HTTP handler threads each `submit` their requests and block; one worker thread takes
everything that is waiting (up to `max_batch_size` requests), groups it by sampling
parameters (a model call takes one `SamplingParams`) and makes one `chat` call per group.

Before a call the worker waits, briefly, for the requests it expects: as many as were in
the server at once since the last call started (its *demand*). Clients that each send
their next request when the last one is answered all come back right after a call, but
not at the same instant; without the wait they would split into cohorts that alternate
with half-full calls. The wait ends as soon as the demand is met and lasts at most half
the last call's duration (bounded by `max_gather_s`, at least `gather_s`), so a lone
client never waits and a departed one costs at most one such wait.
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

    def __init__(
        self,
        model: ChatModel,
        max_batch_size: int = 32,
        gather_s: float = 0.005,
        max_gather_s: float = 1.0,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.model = model
        self.max_batch_size = max_batch_size
        self.gather_s = gather_s
        self.max_gather_s = max_gather_s
        self.stats = BatchStats()
        self._pending: list[_Job] = []
        self._in_server = 0  # requests submitted and not yet answered
        self._demand = 1  # the most in the server at once since the last call started
        self._last_call_s = 0.0
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
            self._in_server += len(job.requests)
            self._demand = max(self._demand, self._in_server)
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
            wait_s = max(self.gather_s, min(self.max_gather_s, self._last_call_s / 2))
            deadline = time.monotonic() + wait_s
            while not self._closed and _size(self._pending) < min(
                self.max_batch_size, self._demand
            ):
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
            self._demand = max(1, self._in_server)
            return taken

    def _answer(self, jobs: list[_Job], params: SamplingParams) -> None:
        requests = [request for job in jobs for request in job.requests]
        start = time.monotonic()
        try:
            completions = self.model.chat(requests, params)
        except Exception as exc:  # the model's failure is each waiting request's 500
            for job in jobs:
                job.error = exc
            self._release(jobs)
            return
        self._last_call_s = time.monotonic() - start
        self.stats.calls += 1
        self.stats.requests += len(requests)
        self.stats.largest_call = max(self.stats.largest_call, len(requests))
        first = 0
        for job in jobs:
            job.completions = completions[first : first + len(job.requests)]
            first += len(job.requests)
        self._release(jobs)

    def _release(self, jobs: list[_Job]) -> None:
        with self._wakeup:
            self._in_server -= _size(jobs)
        for job in jobs:
            job.done.set()


def _size(jobs: list[_Job]) -> int:
    return sum(len(job.requests) for job in jobs)


def _by_params(jobs: list[_Job]) -> dict[SamplingParams, list[_Job]]:
    groups: dict[SamplingParams, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.params, []).append(job)
    return groups
