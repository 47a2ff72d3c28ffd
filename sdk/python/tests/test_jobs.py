"""Functions as jobs, what needs no machine: what is refused before anything is sent, and the bootstrap
that runs a call, run for real here as the job runs it (``python -c``, the inputs in its directory,
$B9_OUTPUT_DIR for the result). The jobs client against the real gateway: the tests marked stack."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import cloudpickle
import httpx
import pytest

from beta9 import Client, Image, JobError, RemoteError, ValidationError, function
from beta9._function import BOOTSTRAP, CALL_INPUT, FUNCTION_INPUT, RESULT, _raise_remote
from beta9.jobs import Job

from conftest import Stack

OWN_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture
def nowhere(closed_port: int) -> Iterator[Client]:
    """A client of a port nothing listens on: any request it sent would fail with a connection error."""
    with Client(host="127.0.0.1", port=closed_port, api_key="b9_test") as client:
        yield client


# --- refused before anything is sent ---


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        ({"gpu": "nvidai"}, "unknown gpu 'nvidai'; choose from nvidia, apple, amd, intel, any, none"),
        ({"timeout": -5}, "timeout must be whole seconds from 1 to 604800 (7 days), not -5"),
        ({"timeout": 8 * 86_400}, "timeout must be whole seconds from 1"),
        ({"retries": 11}, "retries must be a whole number from 0 to 10"),
        ({"retry_on": ["sometimes"]}, "retry_on must list some of lost, out_of_memory, exit, error"),
        ({"retry_on": "lost"}, "retry_on must list some of"),
        ({"memory": "8G"}, "memory must be a number of bytes or a size such as \"8GB\""),
        ({"cpu": 0}, "cpu must be a number of cores above 0"),
        ({"gpu": "none", "vram": "8GB"}, 'vram and gpu_count ask for a GPU, but gpu="none" asks for none'),
        ({"region": "us"}, "unknown region 'us'"),
        ({"prefer": "green"}, "unknown preference 'green'; the one preference is \"low-carbon\""),
    ],
)
def test_bad_options_are_named_at_decoration(options: Any, sentence: str) -> None:
    with pytest.raises(ValidationError) as err:
        function(**options)(lambda: 1)
    assert sentence in str(err.value)


def test_prefer_travels_in_the_spec() -> None:
    assert function(prefer="low-carbon")(lambda: 1)._spec["prefer"] == "low-carbon"
    assert "prefer" not in function()(lambda: 1)._spec


def test_retry_on_travels_in_the_spec() -> None:
    f = function(retries=2, retry_on=["lost", "out_of_memory", "lost"])(lambda: 1)
    assert f._spec["retries"] == 2
    assert f._spec["retry_on"] == ["lost", "out_of_memory"]


def test_image_python_must_be_the_callers() -> None:
    other = "3.99" if OWN_PYTHON != "3.99" else "3.98"
    with pytest.raises(ValidationError) as err:
        Image(python=other)
    assert f"cannot run a function sent from Python {OWN_PYTHON}" in str(err.value)
    assert f'use Image(python="{OWN_PYTHON}")' in str(err.value)


def test_image_adds_the_callers_cloudpickle() -> None:
    env = Image(python=OWN_PYTHON, packages=["numpy"]).environment()
    assert env == {"python": OWN_PYTHON, "packages": [f"cloudpickle=={cloudpickle.__version__}", "numpy"]}
    # Upstream beta9 spells them python_packages.
    assert Image(python_packages=["torch"]).packages == ["torch"]


def test_a_function_that_cannot_be_pickled_is_refused_before_anything_is_sent(nowhere: Client) -> None:
    lock = threading.Lock()

    @function(client=nowhere)
    def holds_a_lock() -> bool:
        with lock:
            return True

    with pytest.raises(ValidationError) as err:
        holds_a_lock.remote()
    text = str(err.value)
    assert "the function of" in text and "holds_a_lock cannot be pickled" in text
    assert "cannot be sent to a machine" in text


def test_an_argument_that_cannot_be_pickled_is_refused_before_anything_is_sent(nowhere: Client) -> None:
    @function(client=nowhere)
    def length(x: Any) -> int:
        return len(x)

    with pytest.raises(ValidationError, match="an argument of .*length cannot be pickled"):
        length.map([[1], threading.Lock()])
    assert length([1, 2]) == 2  # called directly, it runs here


# --- the bootstrap, run as the job runs it ---


def scale(xs: Any, by: int = 1) -> Any:
    return [x * by for x in xs]


def fails(message: str) -> None:
    raise ValueError(message)


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def raises_unpicklable() -> None:
    raise Unpicklable()


def returns_a_lock() -> Any:
    return threading.Lock()


def run_bootstrap(tmp_path: Path, fn: Any, *args: Any, **kwargs: Any) -> tuple[subprocess.CompletedProcess[str], bytes]:
    """Runs a call as the agent's runner does: the inputs in the job's directory, python -c BOOTSTRAP."""
    (tmp_path / FUNCTION_INPUT).write_bytes(pickled_by_value(fn))
    (tmp_path / CALL_INPUT).write_bytes(cloudpickle.dumps((args, kwargs)))
    out = tmp_path / "out"
    env = {**os.environ, "B9_OUTPUT_DIR": str(out)}
    done = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    return done, (out / RESULT).read_bytes()


def pickled_by_value(fn: Any) -> bytes:
    # This test module is not importable where the bootstrap runs, as the caller's module is not on a machine.
    module = sys.modules[fn.__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(fn)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


JOB = Job.from_json(
    {
        "id": "job_0123456789abcdef",
        "workspace": "default",
        "state": "FAILED",
        "reason": "exit code 1",
        "spec": {},
        "priority": 0,
        "attempt": 1,
        "max_retries": 0,
        "machine_id": None,
        "exit_code": 1,
        "created_at": "2026-12-06T18:00:00.000Z",
        "started_at": None,
        "finished_at": None,
    }
)


def test_the_bootstrap_returns_the_value(tmp_path: Path) -> None:
    done, result = run_bootstrap(tmp_path, scale, [1, 2, 3], by=2)
    assert done.returncode == 0, done.stderr
    assert _raise_remote(JOB, result) == [2, 4, 6]


def test_the_exception_is_raised_here_with_the_remote_traceback(tmp_path: Path) -> None:
    done, result = run_bootstrap(tmp_path, fails, "bad input 7")
    # A failed call fails the job, so retries apply to it.
    assert done.returncode == 1
    assert "ValueError: bad input 7" in done.stderr
    with pytest.raises(ValueError) as err:
        _raise_remote(JOB, result)
    text = str(err.value)
    assert text.startswith("bad input 7\n\nRemote traceback (job job_0123456789abcdef):\nTraceback")
    assert "in fails\nValueError: bad input 7" in text


def test_an_exception_that_cannot_travel_back_is_described(tmp_path: Path) -> None:
    done, result = run_bootstrap(tmp_path, raises_unpicklable)
    assert done.returncode == 1
    with pytest.raises(RemoteError) as err:
        _raise_remote(JOB, result)
    assert str(err.value).startswith("Unpicklable: holds a lock (the exception could not be sent back)")
    assert "Remote traceback" in str(err.value)


def test_a_return_value_that_cannot_be_pickled_is_named(tmp_path: Path) -> None:
    done, result = run_bootstrap(tmp_path, returns_a_lock)
    assert done.returncode == 1
    with pytest.raises(TypeError, match="the function's return value cannot be pickled"):
        _raise_remote(JOB, result)


# --- the jobs client against the real gateway ---


@pytest.fixture
def jobs_client(stack: Stack) -> Iterator[Client]:
    admin = httpx.post(
        f"http://{stack.gateway.host}:{stack.gateway.port}/api/v1/keys",
        json={"name": "python-jobs", "scopes": ["jobs"]},
        headers={"authorization": f"Bearer {stack.admin_key}"},
    )
    admin.raise_for_status()
    with Client(host=stack.gateway.host, port=stack.gateway.port, api_key=admin.json()["key"]) as client:
        yield client


@pytest.mark.stack
def test_jobs_create_list_get_cancel(jobs_client: Client) -> None:
    job = jobs_client.jobs.create(["sleep", "300"], priority=3, retries=1, idempotency_key="py-sleep")
    assert job.id.startswith("job_") and job.priority == 3 and job.max_retries == 1
    assert jobs_client.jobs.create(["sleep", "300"], idempotency_key="py-sleep").id == job.id
    listed = jobs_client.jobs.list(limit=50)
    assert job.id in [j.id for j in listed.jobs]
    shown = jobs_client.jobs.get(job.id)
    assert shown.spec["command"] == ["sleep", "300"] and shown.events[0].state == "QUEUED"
    cancelled = jobs_client.jobs.cancel(job.id)
    assert cancelled.state == "CANCELLED" and cancelled.ended
    assert jobs_client.jobs.wait(job.id, timeout=30).state == "CANCELLED"
    assert job.id in [j.id for j in jobs_client.jobs.list("CANCELLED").jobs]


@pytest.mark.stack
def test_jobs_refuse_bad_input(jobs_client: Client) -> None:
    with pytest.raises(ValidationError, match="command must be a non-empty list of strings"):
        jobs_client.jobs.create("python3 -c 'print(1)'")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown job state 'DONE'"):
        jobs_client.jobs.list("DONE")
    from beta9 import NotFoundError

    with pytest.raises(NotFoundError, match="no job job_0000000000000000 in this workspace"):
        jobs_client.jobs.get("job_0000000000000000")


def test_job_error_names_the_state() -> None:
    err = JobError("job x ended LOST", JOB)
    assert err.code == "job_failed" and err.job is JOB
