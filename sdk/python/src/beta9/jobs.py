"""Jobs: commands run on a machine of the pool that fits them, followed, cancelled, their outputs fetched.

    from beta9 import Client
    with Client(host="gateway.example", api_key="b9_…") as client:   # a key with the jobs scope
        job = client.jobs.create(["python3", "-c", "print(42)"])
        for line in client.jobs.logs(job.id, follow=True):
            print(line.line)
        print(client.jobs.wait(job.id).state)

``AsyncClient().jobs`` has the same methods, awaited (``logs`` is an async iterator).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, Iterator, List, Optional, Sequence, Union
from urllib.parse import quote, urlencode

import httpx

from ._plan import Request
from .errors import APIError, APITimeoutError, StreamError, ValidationError

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._client import Client

#: The states a job passes through; the last five are ends (LOST and FAILED may be retried).
JOB_STATES = ("QUEUED", "ASSIGNED", "PREPARING", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "LOST")
ENDED_STATES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "LOST"})
#: All of a job's inputs together, at most (the gateway refuses more).
MAX_INPUT_BYTES = 64 * 1024 * 1024
# Uploading or downloading a file of that size may take longer than a JSON call on a slow link.
_TRANSFER_TIMEOUT = 600.0


@dataclass(frozen=True)
class JobEvent:
    """One transition: when, into which state, why, on which machine."""

    at: str
    state: str
    reason: Optional[str]
    machine_id: Optional[str]


@dataclass(frozen=True)
class Job:
    """A job as the gateway sees it; ``spec`` is what was submitted (command, env, resources, …)."""

    id: str
    workspace: str
    state: str
    reason: Optional[str]
    spec: Dict[str, Any]
    priority: int
    attempt: int
    max_retries: int
    machine_id: Optional[str]
    exit_code: Optional[int]
    created_at: str
    started_at: Optional[str]
    finished_at: Optional[str]
    events: List[JobEvent] = field(default_factory=list)
    ended_for_good: Optional[bool] = None

    @property
    def ended(self) -> bool:
        """True once it ended for good: an end state with no retry to come."""
        if self.ended_for_good is not None:  # the gateway says: it knows the job's retry_on
            return self.ended_for_good
        retry = self.state in ("LOST", "FAILED") and self.attempt <= self.max_retries
        return self.state in ENDED_STATES and not retry

    @classmethod
    def from_json(cls, body: Dict[str, Any]) -> Job:
        return cls(
            id=body["id"],
            workspace=body["workspace"],
            state=body["state"],
            reason=body.get("reason"),
            spec=body.get("spec") or {},
            priority=body.get("priority", 0),
            attempt=body.get("attempt", 1),
            max_retries=body.get("max_retries", 0),
            machine_id=body.get("machine_id"),
            exit_code=body.get("exit_code"),
            created_at=body["created_at"],
            started_at=body.get("started_at"),
            finished_at=body.get("finished_at"),
            ended_for_good=body.get("ended"),
            events=[JobEvent(e["at"], e["state"], e.get("reason"), e.get("machine_id")) for e in body.get("events") or []],
        )


@dataclass(frozen=True)
class JobList:
    jobs: List[Job]
    #: Pass as ``after=`` for the next page; None on the last.
    next: Optional[str]


@dataclass(frozen=True)
class JobLogLine:
    """A line the job wrote: numbered from 1 across its attempts (``seq``), on stdout or stderr."""

    seq: int
    at: str
    attempt: int
    stream: str
    line: str


@dataclass(frozen=True)
class JobOutput:
    """A file the job left under $B9_OUTPUT_DIR."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class JobInput:
    """An uploaded file: name it in a job's ``inputs`` as ``{"name": "data.csv", "sha256": ref.sha256}``."""

    sha256: str
    size: int


class JobError(APIError):
    """A job ended without succeeding (FAILED, TIMED_OUT, CANCELLED, LOST); ``job`` says how."""

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message, code=f"job_{job.state.lower()}", status=None)
        self.job = job


# --- requests, shared by Jobs and AsyncJobs ---


def _path(job_id: str, *rest: str) -> str:
    if not isinstance(job_id, str) or not job_id or job_id in (".", ".."):
        raise ValidationError(f"a job id is a string such as job_0123456789abcdef, not {job_id!r}")
    return "/".join(["/api/v1/jobs", quote(job_id, safe=""), *rest])


def _create_body(command: Sequence[str], spec: Dict[str, Any]) -> Dict[str, Any]:
    if isinstance(command, str) or not command or not all(isinstance(a, str) and a for a in command):
        raise ValidationError(
            'command must be a non-empty list of strings, e.g. ["python3", "train.py"] (an argv, never a shell line)'
        )
    body: Dict[str, Any] = {"command": list(command)}
    body.update({k: v for k, v in spec.items() if v is not None})
    return body


def _list_path(state: Union[str, Sequence[str], None], limit: Optional[int], after: Optional[str]) -> str:
    states = [state] if isinstance(state, str) else list(state or [])
    for s in states:
        if s not in JOB_STATES:
            raise ValidationError(f"unknown job state {s!r}; choose from {', '.join(JOB_STATES)}")
    query = {"state": ",".join(states) or None, "limit": limit, "after": after}
    text = urlencode({k: v for k, v in query.items() if v is not None})
    return f"/api/v1/jobs?{text}" if text else "/api/v1/jobs"


def _logs_params(after: int, follow: bool) -> Dict[str, str]:
    params = {"after": str(after)} if after else {}
    if follow:
        params["follow"] = "true"
    return params


def _log_line(text: str) -> Optional[JobLogLine]:
    text = text.strip()
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        raise StreamError(f"a log line is not JSON: {text[:200]!r}", code="unexpected_response", status=200) from None
    if "error" in body:
        error = body["error"] if isinstance(body["error"], dict) else {"message": str(body["error"])}
        raise StreamError(error.get("message", "the log stream failed"), code=error.get("code") or "logs_failed", status=200)
    return JobLogLine(body["seq"], body["at"], body.get("attempt", 1), body.get("stream", "stdout"), body["line"])


def _outputs(body: Dict[str, Any]) -> List[JobOutput]:
    return [JobOutput(o["name"], o["sha256"], o["size"]) for o in body.get("outputs", [])]


def _output_path(job_id: str, name: str) -> str:
    return _path(job_id, "outputs", "/".join(quote(part, safe="") for part in name.split("/")))


def _check_bytes(data: bytes) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValidationError(f"an input is bytes, not {type(data).__name__}")
    if len(data) > MAX_INPUT_BYTES:
        raise ValidationError(f"an input is at most {MAX_INPUT_BYTES // 2**20} MiB; this one is {len(data)} bytes")
    return bytes(data)


def _pause(attempt: int) -> float:
    """Polls soon after submitting (short jobs), then less often."""
    return min(0.1 * 2**attempt, 1.0)


def _stream_timeout(follow: bool, seconds: float) -> httpx.Timeout:
    # A followed log may stay quiet for as long as the job runs.
    return httpx.Timeout(None if follow else seconds, connect=min(10.0, seconds))


class Jobs:
    """``client.jobs``: submit, list, show, follow, cancel jobs and fetch their outputs. Needs a key
    with the ``jobs`` scope (``b9 key create NAME --scopes jobs``); reads also take ``read``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, command: Sequence[str], **spec: Any) -> Job:
        """Queue ``command`` (an argv). Keywords are the gateway's job spec: ``env`` (dict),
        ``environment`` ({"python": "3.12", "packages": [...]}), ``resources`` ({"gpu": "any",
        "min_vram_bytes": …, "cpu": 2, "memory_bytes": …}), ``pool``, ``countries``, ``region``,
        ``timeout_seconds``, ``retries``, ``priority``, ``inputs`` ([{"name", "sha256"}]),
        ``idempotency_key``."""
        return Job.from_json(self._client._send(Request("POST", "/api/v1/jobs", _create_body(command, spec))))

    def list(
        self, state: Union[str, Sequence[str], None] = None, *, limit: Optional[int] = None, after: Optional[str] = None
    ) -> JobList:
        """One page of the workspace's jobs, newest first (``state``: one or several states)."""
        body = self._client._send(Request("GET", _list_path(state, limit, after)))
        return JobList([Job.from_json(j) for j in body["jobs"]], body.get("next"))

    def get(self, job_id: str) -> Job:
        """A job with its transitions (``events``)."""
        return Job.from_json(self._client._send(Request("GET", _path(job_id))))

    def cancel(self, job_id: str) -> Job:
        """Stop a job; one that already ended raises ConflictError."""
        return Job.from_json(self._client._send(Request("POST", _path(job_id, "cancel"))))

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Job:
        """The job once it has ended for good; APITimeoutError after ``timeout`` seconds (it keeps running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in range(1_000_000):
            job = self.get(job_id)
            if job.ended:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise APITimeoutError(f"job {job_id} did not end within {timeout:g} s; it is {job.state} and keeps going")
            pause = _pause(attempt)
            time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
        raise AssertionError("unreachable")

    def logs(self, job_id: str, *, after: int = 0, follow: bool = False) -> Iterator[JobLogLine]:
        """The job's lines after line ``after``; with ``follow`` the iterator waits for new ones until the job ends."""
        path = _path(job_id, "logs")
        http = self._client._http
        timeout = _stream_timeout(follow, self._client.settings.timeout)
        try:
            with http.stream(
                "GET", path, params=_logs_params(after, follow), headers={"accept": "application/x-ndjson"}, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._client._error(response)
                for text in response.iter_lines():
                    line = _log_line(text)
                    if line is not None:
                        yield line
        except httpx.HTTPError as err:
            raise self._client._connection_error(err) from err

    def outputs(self, job_id: str) -> List[JobOutput]:
        """The files the job left under $B9_OUTPUT_DIR."""
        return _outputs(self._client._send(Request("GET", _path(job_id, "outputs"))))

    def output(self, job_id: str, name: str) -> bytes:
        """One output's bytes."""
        try:
            response = self._client._http.get(
                _output_path(job_id, name), headers={"accept": "application/octet-stream"}, timeout=_TRANSFER_TIMEOUT
            )
        except httpx.HTTPError as err:
            raise self._client._connection_error(err) from err
        if response.status_code >= 400:
            raise self._client._error(response)
        return response.content

    def upload_input(self, data: bytes) -> JobInput:
        """Keep ``data`` at the gateway for jobs' ``inputs``; the same bytes are kept once."""
        body = _check_bytes(data)
        try:
            response = self._client._http.post(
                "/api/v1/jobs/inputs",
                content=body,
                headers={"content-type": "application/octet-stream"},
                timeout=_TRANSFER_TIMEOUT,
            )
        except httpx.HTTPError as err:
            raise self._client._connection_error(err) from err
        answer = self._client._read(response, Request("POST", "/api/v1/jobs/inputs"))
        return JobInput(answer["sha256"], answer["size"])


class AsyncJobs:
    """``AsyncClient().jobs``: the same calls as Jobs, awaited; ``logs`` is an async iterator."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, command: Sequence[str], **spec: Any) -> Job:
        """Queue ``command``; the keywords as for Jobs.create."""
        return Job.from_json(await self._client._send(Request("POST", "/api/v1/jobs", _create_body(command, spec))))

    async def list(
        self, state: Union[str, Sequence[str], None] = None, *, limit: Optional[int] = None, after: Optional[str] = None
    ) -> JobList:
        body = await self._client._send(Request("GET", _list_path(state, limit, after)))
        return JobList([Job.from_json(j) for j in body["jobs"]], body.get("next"))

    async def get(self, job_id: str) -> Job:
        return Job.from_json(await self._client._send(Request("GET", _path(job_id))))

    async def cancel(self, job_id: str) -> Job:
        return Job.from_json(await self._client._send(Request("POST", _path(job_id, "cancel"))))

    async def wait(self, job_id: str, timeout: Optional[float] = None) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in range(1_000_000):
            job = await self.get(job_id)
            if job.ended:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise APITimeoutError(f"job {job_id} did not end within {timeout:g} s; it is {job.state} and keeps going")
            pause = _pause(attempt)
            await asyncio.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
        raise AssertionError("unreachable")

    async def logs(self, job_id: str, *, after: int = 0, follow: bool = False) -> AsyncIterator[JobLogLine]:
        path = _path(job_id, "logs")
        http = self._client._http
        timeout = _stream_timeout(follow, self._client.settings.timeout)
        try:
            async with http.stream(
                "GET", path, params=_logs_params(after, follow), headers={"accept": "application/x-ndjson"}, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._client._error(response)
                async for text in response.aiter_lines():
                    line = _log_line(text)
                    if line is not None:
                        yield line
        except httpx.HTTPError as err:
            raise self._client._connection_error(err) from err

    async def outputs(self, job_id: str) -> List[JobOutput]:
        return _outputs(await self._client._send(Request("GET", _path(job_id, "outputs"))))

    async def output(self, job_id: str, name: str) -> bytes:
        try:
            response = await self._client._http.get(
                _output_path(job_id, name), headers={"accept": "application/octet-stream"}, timeout=_TRANSFER_TIMEOUT
            )
        except httpx.HTTPError as err:
            raise self._client._connection_error(err) from err
        if response.status_code >= 400:
            raise self._client._error(response)
        return response.content

    async def upload_input(self, data: bytes) -> JobInput:
        body = _check_bytes(data)
        try:
            response = await self._client._http.post(
                "/api/v1/jobs/inputs",
                content=body,
                headers={"content-type": "application/octet-stream"},
                timeout=_TRANSFER_TIMEOUT,
            )
        except httpx.HTTPError as err:
            raise self._client._connection_error(err) from err
        answer = self._client._read(response, Request("POST", "/api/v1/jobs/inputs"))
        return JobInput(answer["sha256"], answer["size"])
