"""Python functions run as jobs on the pool: ``from beta9 import function, Image``.

    @function(gpu="any", image=Image(packages=["numpy"]), timeout=600, retries=2)
    def norm(xs):
        import numpy as np
        return float(np.linalg.norm(xs))

    norm.remote([3, 4])                # 5.0, computed on a machine that fits
    norm.map([[1], [2, 2], [3]])       # ordered results, the jobs submitted together
    call = norm.spawn([1, 1])          # a handle: call.get(), call.cancel(), call.logs(), call.outputs()
    await norm.remote.aio([3, 4])      # the async twins: remote.aio, map.aio, spawn.aio

How a call travels: the function and its arguments are pickled by value with cloudpickle (so functions
defined in ``__main__`` or a notebook work), uploaded as the job's inputs, and run by a small bootstrap
(``python -c``) in an environment with the image's packages and the caller's cloudpickle. The bootstrap
writes the return value, or the exception with its traceback, to ``$B9_OUTPUT_DIR/result.pickle``;
the caller downloads it and returns the value or raises the exception, the remote traceback in its
message. The job's Python is the caller's (bytecode runs only on the Python version that made it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    overload,
)

import cloudpickle

from . import _settings
from ._async_client import AsyncClient
from ._client import Client
from .errors import Beta9Error, ValidationError
from .jobs import AsyncJobs, Job, JobError, JobLogLine, JobOutput, Jobs

R = TypeVar("R")

GPU_KINDS = ("nvidia", "apple", "amd", "intel", "any", "none")
#: Which ends of a run a retry is for (the job spec's retry_on).
RETRY_CAUSES = ("lost", "out_of_memory", "exit", "error")
RESULT = "result.pickle"
FUNCTION_INPUT = "function.pickle"
CALL_INPUT = "call.pickle"
_MAX_TIMEOUT = 7 * 86_400
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
# How many calls of a map are uploaded and submitted at once.
_SUBMIT_CONCURRENCY = 16

#: Run in the job (python -c): load the function and its call, run it, keep what came of it.
BOOTSTRAP = f"""
import os, sys, traceback
import cloudpickle
out = os.environ.get("B9_OUTPUT_DIR") or "out"
os.makedirs(out, exist_ok=True)
code = 0
try:
    with open({FUNCTION_INPUT!r}, "rb") as f:
        fn = cloudpickle.load(f)
    with open({CALL_INPUT!r}, "rb") as f:
        args, kwargs = cloudpickle.load(f)
    value = fn(*args, **kwargs)
    try:
        result = cloudpickle.dumps(("ok", value))
    except Exception as e:
        raise TypeError("the function's return value cannot be pickled: %s: %s" % (type(e).__name__, e)) from None
except BaseException as e:
    code = 1
    tb = traceback.format_exc()
    sys.stderr.write(tb)
    summary = "%s: %s" % (type(e).__name__, e)
    try:
        result = cloudpickle.dumps(("error", e, tb, summary))
    except Exception:
        result = cloudpickle.dumps(("error", None, tb, summary))
with open(os.path.join(out, {RESULT!r}), "wb") as f:
    f.write(result)
sys.stdout.flush()
sys.exit(code)
"""


class RemoteError(Beta9Error):
    """The function raised an exception that could not travel back (it could not be pickled, or
    unpickled here); the message has its type, text and remote traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="remote_error")


class RemoteTraceback(Exception):
    """Where the remote exception came from: its traceback on the machine, as text."""


def _caller_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


class Image:
    """The job's Python environment: ``python`` (default: the caller's version, which is the only one
    that can run the pickled function), ``packages`` to install, or a ``requirements`` file's text.
    cloudpickle, at the caller's version, is added."""

    def __init__(
        self,
        python: Optional[str] = None,
        packages: Sequence[str] = (),
        requirements: Optional[str] = None,
        *,
        python_packages: Sequence[str] = (),
    ) -> None:
        own = _caller_python()
        if python is not None and (not isinstance(python, str) or not re.fullmatch(r"3\.\d{1,2}", python)):
            raise ValidationError(f'python must be a version such as "3.12", not {python!r}')
        if python is not None and python != own:
            raise ValidationError(
                f"Image(python={python!r}) cannot run a function sent from Python {own}: functions travel as "
                f'bytecode, which only the same Python version runs; use Image(python="{own}") or leave it out'
            )
        listed = list(packages) + list(python_packages)  # upstream beta9 calls them python_packages
        if isinstance(packages, str) or not all(isinstance(p, str) and p.strip() for p in listed):
            raise ValidationError(f'packages must be a list of package names such as ["numpy"], not {packages!r}')
        if requirements is not None and not isinstance(requirements, str):
            raise ValidationError("requirements must be a requirements.txt's text")
        self.python = own
        self.packages = [p.strip() for p in listed]
        self.requirements = requirements

    def environment(self) -> Dict[str, Any]:
        """The job spec's ``environment``."""
        env: Dict[str, Any] = {
            "python": self.python,
            "packages": [f"cloudpickle=={cloudpickle.__version__}", *self.packages],
        }
        if self.requirements is not None:
            env["requirements"] = self.requirements
        return env

    def __repr__(self) -> str:
        return f"Image(python={self.python!r}, packages={self.packages!r})"


def _size(value: Union[int, str, None], what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if m and (m.group(2).lower() or "b") in _SIZE_UNITS:
            n = round(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower() or "b"])
            if n > 0:
                return n
    raise ValidationError(f'{what} must be a number of bytes or a size such as "8GB" or "512MiB", not {value!r}')


def _spec(
    *,
    gpu: Optional[str],
    gpu_count: Optional[int],
    vram: Union[int, str, None],
    cpu: Optional[float],
    memory: Union[int, str, None],
    image: Optional[Image],
    timeout: Optional[int],
    retries: Optional[int],
    priority: Optional[int],
    pool: Optional[str],
    region: Optional[str],
    countries: Optional[Sequence[str]],
    env: Optional[Dict[str, str]],
    retry_on: Optional[Sequence[str]] = None,
    prefer: Optional[str] = None,
) -> Dict[str, Any]:
    """The job spec every call of a function shares, checked now so a mistake is named at decoration."""
    if gpu is not None and gpu not in GPU_KINDS:
        raise ValidationError(f"unknown gpu {gpu!r}; choose from {', '.join(GPU_KINDS)}")
    if gpu_count is not None and (isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or not 1 <= gpu_count <= 16):
        raise ValidationError(f"gpu_count must be a whole number from 1 to 16, not {gpu_count!r}")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not 0 < cpu <= 1024):
        raise ValidationError(f"cpu must be a number of cores above 0 and at most 1024, not {cpu!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= _MAX_TIMEOUT):
        raise ValidationError(f"timeout must be whole seconds from 1 to {_MAX_TIMEOUT} (7 days), not {timeout!r}")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10):
        raise ValidationError(f"retries must be a whole number from 0 to 10, not {retries!r}")
    if retry_on is not None and (
        isinstance(retry_on, str) or not retry_on or not all(c in RETRY_CAUSES for c in retry_on)
    ):
        raise ValidationError(f"retry_on must list some of {', '.join(RETRY_CAUSES)}, not {retry_on!r}")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int) or not -1000 <= priority <= 1000):
        raise ValidationError(f"priority must be a whole number from -1000 to 1000, not {priority!r}")
    if region is not None and region != "eu":
        raise ValidationError(f'unknown region {region!r}; the one region is "eu"')
    if prefer is not None and prefer != "low-carbon":
        raise ValidationError(f'unknown preference {prefer!r}; the one preference is "low-carbon"')
    if pool is not None and (not isinstance(pool, str) or not pool):
        raise ValidationError(f"pool must be a pool's name, not {pool!r}")
    if env is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValidationError("env must map variable names to strings")
    resources: Dict[str, Any] = {}
    vram_bytes = _size(vram, "vram")
    if gpu == "none" and (vram_bytes is not None or gpu_count is not None):
        raise ValidationError('vram and gpu_count ask for a GPU, but gpu="none" asks for none; drop one of them')
    if gpu is not None or vram_bytes is not None or gpu_count is not None:
        resources["gpu"] = gpu or "any"
    if gpu_count is not None:
        resources["gpu_count"] = gpu_count
    if vram_bytes is not None:
        resources["min_vram_bytes"] = vram_bytes
    if cpu is not None:
        resources["cpu"] = cpu
    memory_bytes = _size(memory, "memory")
    if memory_bytes is not None:
        resources["memory_bytes"] = memory_bytes
    spec: Dict[str, Any] = {
        "environment": (image or Image()).environment(),
        # Lines reach the log as they are printed, not when a buffer fills.
        "env": {"PYTHONUNBUFFERED": "1", **(env or {})},
        "resources": resources or None,
        "timeout_seconds": timeout,
        "retries": retries,
        "retry_on": list(dict.fromkeys(retry_on)) if retry_on is not None else None,
        "priority": priority,
        "pool": pool,
        "region": region,
        "countries": [c.upper() for c in countries] if countries else None,
        "prefer": prefer,
    }
    return {k: v for k, v in spec.items() if v is not None}


def _by_value(module_name: str) -> Optional[Any]:
    """The function's module when it must travel by value: neither installed nor the standard library
    (``__main__`` always travels by value)."""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None or module_name == "__main__" or not path:
        return None
    installed = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    if any(os.path.abspath(path).startswith(os.path.abspath(p) + os.sep) for p in installed):
        return None
    return module


def _pickle(what: str, name: str, value: Any, module_name: Optional[str] = None) -> bytes:
    module = _by_value(module_name) if module_name else None
    if module is not None:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(value)
    except Exception as err:
        raise ValidationError(
            f"{what} of {name} cannot be pickled ({type(err).__name__}: {err}), so it cannot be sent to a machine; "
            "pass data (numbers, strings, lists, arrays) and open files, locks and connections inside the function"
        ) from err
    finally:
        if module is not None:
            cloudpickle.unregister_pickle_by_value(module)


def _raise_remote(job: Job, data: bytes) -> Any:
    """The call's value, or its exception raised here with the remote traceback in its message."""
    try:
        outcome = cloudpickle.loads(data)
    except Exception as err:
        raise RemoteError(
            f"job {job.id}'s result cannot be unpickled here ({type(err).__name__}: {err}); "
            "does this Python have the packages the result's types come from?"
        ) from err
    if outcome[0] == "ok":
        return outcome[1]
    _, exc, tb, summary = outcome
    where = f"\n\nRemote traceback (job {job.id}):\n{tb.rstrip()}"
    if not isinstance(exc, BaseException):
        raise RemoteError(f"{summary} (the exception could not be sent back){where}")
    if len(exc.args) == 1 and isinstance(exc.args[0], str) and str(exc) == exc.args[0]:
        exc.args = (exc.args[0] + where,)
        raise exc
    raise exc from RemoteTraceback(tb)


def _failed(job: Job, tail: List[JobLogLine]) -> JobError:
    why = f": {job.reason}" if job.reason else ""
    lines = "".join(f"\n  {line.line}" for line in tail[-20:])
    last = f"\nIts last lines:{lines}" if lines else ""
    return JobError(f"job {job.id} ended {job.state}{why}{last}", job)


def _check_result(job: Job, outputs: List[JobOutput]) -> Optional[JobOutput]:
    return next((o for o in outputs if o.name == RESULT), None)


def _verified(job: Job, output: JobOutput, data: bytes) -> bytes:
    if hashlib.sha256(data).hexdigest() != output.sha256:
        raise Beta9Error(f"job {job.id}'s result arrived damaged (its sha256 differs); get it again", code="corrupt_output")
    return data


class FunctionCall(Generic[R]):
    """A call of a function running as a job (``f.spawn(...)``): wait for its value with ``get()``."""

    def __init__(self, jobs: Jobs, job: Job) -> None:
        self._jobs = jobs
        self.job = job

    @property
    def id(self) -> str:
        return self.job.id

    def get(self, timeout: Optional[float] = None) -> R:
        """The function's return value once the job ended; its exception is raised here. APITimeoutError
        after ``timeout`` seconds (the job keeps running)."""
        job = self.job = self._jobs.wait(self.id, timeout)
        output = _check_result(job, self._jobs.outputs(job.id))
        if output is None:
            raise _failed(job, list(self._jobs.logs(job.id))) from None
        return _raise_remote(job, _verified(job, output, self._jobs.output(job.id, output.name)))  # type: ignore[no-any-return]

    def cancel(self) -> Job:
        self.job = self._jobs.cancel(self.id)
        return self.job

    def logs(self, *, follow: bool = False, after: int = 0) -> Iterator[JobLogLine]:
        return self._jobs.logs(self.id, after=after, follow=follow)

    def outputs(self) -> List[JobOutput]:
        return self._jobs.outputs(self.id)

    def __repr__(self) -> str:
        return f"FunctionCall({self.id!r}, state={self.job.state!r})"


class AsyncFunctionCall(Generic[R]):
    """The async twin of FunctionCall (``await f.spawn.aio(...)``): each method awaited."""

    def __init__(self, jobs: AsyncJobs, job: Job) -> None:
        self._jobs = jobs
        self.job = job

    @property
    def id(self) -> str:
        return self.job.id

    async def get(self, timeout: Optional[float] = None) -> R:
        job = self.job = await self._jobs.wait(self.id, timeout)
        output = _check_result(job, await self._jobs.outputs(job.id))
        if output is None:
            raise _failed(job, [line async for line in self._jobs.logs(job.id)]) from None
        return _raise_remote(job, _verified(job, output, await self._jobs.output(job.id, output.name)))  # type: ignore[no-any-return]

    async def cancel(self) -> Job:
        self.job = await self._jobs.cancel(self.id)
        return self.job

    def logs(self, *, follow: bool = False, after: int = 0) -> Any:
        """An async iterator of the job's lines."""
        return self._jobs.logs(self.id, after=after, follow=follow)

    async def outputs(self) -> List[JobOutput]:
        return await self._jobs.outputs(self.id)

    def __repr__(self) -> str:
        return f"AsyncFunctionCall({self.id!r}, state={self.job.state!r})"


class _Method(Generic[R]):
    """A call with an async twin: ``f.remote(x)`` and ``await f.remote.aio(x)``."""

    def __init__(self, sync: Callable[..., R], aio: Callable[..., Awaitable[Any]]) -> None:
        self._sync = sync
        self.aio = aio

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self._sync(*args, **kwargs)


@dataclass
class _Payload:
    function: bytes
    calls: List[bytes]


class Function(Generic[R]):
    """A function that runs as a job: ``remote``, ``map``, ``spawn`` (each with ``.aio``); calling it
    directly runs it here."""

    def __init__(self, fn: Callable[..., R], spec: Dict[str, Any], client: Union[Client, AsyncClient, None]) -> None:
        if not callable(fn):
            raise ValidationError(f"@function decorates a function, not {type(fn).__name__}")
        self._fn = fn
        self._spec = spec
        self._client = client
        self.__name__ = getattr(fn, "__name__", "function")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self.remote: _Method[R] = _Method(self._remote, self._remote_aio)
        self.map: _Method[List[Any]] = _Method(self._map, self._map_aio)
        self.spawn: _Method[FunctionCall[R]] = _Method(self._spawn, self._spawn_aio)

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<beta9 function {self.__qualname__}>"

    # --- what travels ---

    def _payload(self, calls: Iterable[Tuple[Tuple[Any, ...], Dict[str, Any]]]) -> _Payload:
        """The function and each call's arguments, pickled: a failure is named before anything is sent."""
        module = getattr(self._fn, "__module__", None)
        function = _pickle("the function", self.__qualname__, self._fn, module)
        pickled = [_pickle("an argument", self.__qualname__, call, module) for call in calls]
        return _Payload(function, pickled)

    def _job_spec(self, function_sha: str, call_sha: str) -> Tuple[List[str], Dict[str, Any]]:
        inputs = [{"name": FUNCTION_INPUT, "sha256": function_sha}, {"name": CALL_INPUT, "sha256": call_sha}]
        return ["python", "-c", BOOTSTRAP], {**self._spec, "inputs": inputs}

    # --- sync ---

    def _sync_client(self) -> Tuple[Client, bool]:
        if isinstance(self._client, Client):
            return self._client, False
        if isinstance(self._client, AsyncClient):
            return Client(**_same_settings(self._client)), True
        return Client(), True

    def _submit(self, jobs: Jobs, function_sha: str, call: bytes) -> Job:
        command, spec = self._job_spec(function_sha, jobs.upload_input(call).sha256)
        return jobs.create(command, **spec)

    def _spawn(self, *args: Any, **kwargs: Any) -> FunctionCall[R]:
        payload = self._payload([(args, kwargs)])
        client, _ = self._sync_client()
        jobs = Jobs(client)
        function_sha = jobs.upload_input(payload.function).sha256
        return FunctionCall(jobs, self._submit(jobs, function_sha, payload.calls[0]))

    def _remote(self, *args: Any, **kwargs: Any) -> R:
        payload = self._payload([(args, kwargs)])
        client, own = self._sync_client()
        try:
            jobs = Jobs(client)
            function_sha = jobs.upload_input(payload.function).sha256
            job = self._submit(jobs, function_sha, payload.calls[0])
            with _cancelled_on_interrupt(jobs, [job]):
                return FunctionCall[R](jobs, job).get()
        finally:
            if own:
                client.close()

    def _map(self, inputs: Iterable[Any], *, return_exceptions: bool = False) -> List[Any]:
        """One job per input (``f(x)``), submitted together; the results in the inputs' order. An
        exception is raised at the first input (in order) that raised, unless ``return_exceptions``
        puts it in that input's place."""
        payload = self._payload([((x,), {}) for x in inputs])
        if not payload.calls:
            return []
        client, own = self._sync_client()
        try:
            jobs = Jobs(client)
            function_sha = jobs.upload_input(payload.function).sha256
            with ThreadPoolExecutor(min(_SUBMIT_CONCURRENCY, len(payload.calls))) as pool:
                submitted = list(pool.map(lambda call: self._submit(jobs, function_sha, call), payload.calls))
            results: List[Any] = []
            with _cancelled_on_interrupt(jobs, submitted):
                for job in submitted:
                    try:
                        results.append(FunctionCall[R](jobs, job).get())
                    except Exception as err:
                        if not return_exceptions:
                            raise
                        results.append(err)
            return results
        finally:
            if own:
                client.close()

    # --- async ---

    def _async_client(self) -> Tuple[AsyncClient, bool]:
        if isinstance(self._client, AsyncClient):
            return self._client, False
        if isinstance(self._client, Client):
            return AsyncClient(**_same_settings(self._client)), True
        return AsyncClient(), True

    async def _submit_aio(self, jobs: AsyncJobs, function_sha: str, call: bytes) -> Job:
        command, spec = self._job_spec(function_sha, (await jobs.upload_input(call)).sha256)
        return await jobs.create(command, **spec)

    async def _spawn_aio(self, *args: Any, **kwargs: Any) -> AsyncFunctionCall[R]:
        payload = self._payload([(args, kwargs)])
        client, _ = self._async_client()
        jobs = AsyncJobs(client)
        function_sha = (await jobs.upload_input(payload.function)).sha256
        return AsyncFunctionCall(jobs, await self._submit_aio(jobs, function_sha, payload.calls[0]))

    async def _remote_aio(self, *args: Any, **kwargs: Any) -> R:
        payload = self._payload([(args, kwargs)])
        client, own = self._async_client()
        try:
            jobs = AsyncJobs(client)
            function_sha = (await jobs.upload_input(payload.function)).sha256
            job = await self._submit_aio(jobs, function_sha, payload.calls[0])
            try:
                return await AsyncFunctionCall[R](jobs, job).get()
            except (asyncio.CancelledError, KeyboardInterrupt):
                await _cancel_all(jobs, [job])
                raise
        finally:
            if own:
                await client.aclose()

    async def _map_aio(self, inputs: Iterable[Any], *, return_exceptions: bool = False) -> List[Any]:
        payload = self._payload([((x,), {}) for x in inputs])
        if not payload.calls:
            return []
        client, own = self._async_client()
        try:
            jobs = AsyncJobs(client)
            function_sha = (await jobs.upload_input(payload.function)).sha256
            limit = asyncio.Semaphore(_SUBMIT_CONCURRENCY)

            async def submit(call: bytes) -> Job:
                async with limit:
                    return await self._submit_aio(jobs, function_sha, call)

            submitted = await asyncio.gather(*(submit(call) for call in payload.calls))
            results: List[Any] = []
            try:
                for job in submitted:
                    try:
                        results.append(await AsyncFunctionCall[R](jobs, job).get())
                    except Exception as err:
                        if not return_exceptions:
                            raise
                        results.append(err)
            except (asyncio.CancelledError, KeyboardInterrupt):
                await _cancel_all(jobs, list(submitted))
                raise
            return results
        finally:
            if own:
                await client.aclose()


@contextmanager
def _cancelled_on_interrupt(jobs: Jobs, submitted: List[Job]) -> Iterator[None]:
    """Ctrl+C while waiting for calls stops their jobs too: nothing keeps running for a caller that left."""
    try:
        yield
    except KeyboardInterrupt:
        for job in submitted:
            try:
                jobs.cancel(job.id)
            except Beta9Error:
                pass  # it ended meanwhile, or the gateway is gone: nothing more to stop
        raise


async def _cancel_all(jobs: AsyncJobs, submitted: List[Job]) -> None:
    """The async twin of _cancelled_on_interrupt's cleanup: a cancelled await stops its jobs."""
    for job in submitted:
        try:
            await jobs.cancel(job.id)
        except Beta9Error:
            pass  # it ended meanwhile, or the gateway is gone: nothing more to stop


def _same_settings(client: Union[Client, AsyncClient]) -> Dict[str, Any]:
    s = client.settings
    return {name: getattr(s, name) for name in _settings.NAMES}


@overload
def function(fn: Callable[..., R]) -> Function[R]: ...
@overload
def function(
    fn: None = ...,
    *,
    gpu: Optional[str] = ...,
    gpu_count: Optional[int] = ...,
    vram: Union[int, str, None] = ...,
    cpu: Optional[float] = ...,
    memory: Union[int, str, None] = ...,
    image: Optional[Image] = ...,
    timeout: Optional[int] = ...,
    retries: Optional[int] = ...,
    retry_on: Optional[Sequence[str]] = ...,
    priority: Optional[int] = ...,
    pool: Optional[str] = ...,
    region: Optional[str] = ...,
    countries: Optional[Sequence[str]] = ...,
    prefer: Optional[str] = ...,
    env: Optional[Dict[str, str]] = ...,
    client: Union[Client, AsyncClient, None] = ...,
) -> Callable[[Callable[..., R]], Function[R]]: ...
def function(
    fn: Optional[Callable[..., R]] = None,
    *,
    gpu: Optional[str] = None,
    gpu_count: Optional[int] = None,
    vram: Union[int, str, None] = None,
    cpu: Optional[float] = None,
    memory: Union[int, str, None] = None,
    image: Optional[Image] = None,
    timeout: Optional[int] = None,
    retries: Optional[int] = None,
    retry_on: Optional[Sequence[str]] = None,
    priority: Optional[int] = None,
    pool: Optional[str] = None,
    region: Optional[str] = None,
    countries: Optional[Sequence[str]] = None,
    prefer: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    client: Union[Client, AsyncClient, None] = None,
) -> Union[Function[R], Callable[[Callable[..., R]], Function[R]]]:
    """Make a function run as a job on a machine that fits: ``gpu`` ("nvidia", "apple", "amd",
    "intel", "any"; default none), ``gpu_count``, ``vram`` and ``memory`` (bytes or "24GB"), ``cpu``
    (cores), ``image`` (its Python packages), ``timeout`` (seconds), ``retries`` (runs after a failure
    or a lost machine), ``retry_on`` (which ends are retried: "lost", "out_of_memory", "exit",
    "error"; default all), ``priority``, ``pool``, ``region`` ("eu") or ``countries``, ``prefer``
    ("low-carbon": the machine whose grid emits least per kWh among those that fit), ``env``.
    ``client``: a Client or AsyncClient with a key of the jobs scope; by default one is made from
    ``inference.configure()`` and the environment (BETA9_INFERENCE_HOST, BETA9_API_KEY)."""
    spec = _spec(
        gpu=gpu,
        gpu_count=gpu_count,
        vram=vram,
        cpu=cpu,
        memory=memory,
        image=image,
        timeout=timeout,
        retries=retries,
        priority=priority,
        pool=pool,
        region=region,
        countries=countries,
        env=env,
        retry_on=retry_on,
        prefer=prefer,
    )
    if fn is not None:
        return Function(fn, spec, client)
    return lambda f: Function(f, spec, client)
