"""Functions run as jobs on the real gateway and agent (the stack): ``.remote`` of a numpy function,
``.map`` over 20 inputs in order, ``.spawn`` handles, a remote exception with its traceback, and the
async twins. The job's environment (numpy, cloudpickle) is built on the agent with uv."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any, Iterator, List

import httpx
import pytest

from beta9 import AsyncClient, Client, Image, JobError, function
from beta9.jobs import Jobs
from conftest import Stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def jobs_key(stack: Stack) -> str:
    made = httpx.post(
        f"http://{stack.gateway.host}:{stack.gateway.port}/api/v1/keys",
        json={"name": "python-functions", "scopes": ["jobs"]},
        headers={"authorization": f"Bearer {stack.admin_key}"},
    )
    made.raise_for_status()
    return str(made.json()["key"])


@pytest.fixture
def client(stack: Stack, jobs_key: str) -> Iterator[Client]:
    with Client(host=stack.gateway.host, port=stack.gateway.port, api_key=jobs_key) as c:
        yield c


NUMPY = Image(packages=["numpy"])


def norm(xs: Any) -> float:
    import numpy as np

    return float(np.linalg.norm(np.asarray(xs, dtype=float)))


def square_or_fail(x: int) -> int:
    if x == 13:
        raise ValueError(f"unlucky {x}")
    return x * x


def test_remote_runs_a_numpy_function_on_a_machine(client: Client) -> None:
    remote_norm = function(image=NUMPY, timeout=600, retries=0, client=client)(norm)
    assert remote_norm.remote([3, 4]) == 5.0
    # The first call built the environment; the next one reuses it.
    started = time.monotonic()
    assert remote_norm.remote([6, 8]) == 10.0
    assert time.monotonic() - started < 30


def test_map_over_20_inputs_keeps_their_order(client: Client) -> None:
    squares = function(image=NUMPY, client=client)(square_or_fail)
    xs = list(range(20))
    with pytest.raises(ValueError):
        squares.map(xs)  # 13 raises
    results = squares.map(xs, return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 13] == [x * x for x in xs if x != 13]
    assert isinstance(results[13], ValueError)
    assert "unlucky 13" in str(results[13]) and "Remote traceback (job job_" in str(results[13])


def test_the_remote_exception_is_raised_here_with_its_traceback(client: Client) -> None:
    squares = function(client=client)(square_or_fail)
    with pytest.raises(ValueError) as err:
        squares.remote(13)
    assert str(err.value).startswith("unlucky 13\n\nRemote traceback (job job_")
    assert "in square_or_fail" in str(err.value)


def test_spawn_gives_a_handle(client: Client) -> None:
    def shout(text: str) -> str:
        print(f"shouting {text}")
        return text.upper()

    call = function(client=client)(shout).spawn("hi")
    assert call.id.startswith("job_")
    assert call.get(timeout=300) == "HI"
    assert "shouting hi" in [line.line for line in call.logs()]
    assert [o.name for o in call.outputs()] == ["result.pickle"]

    def wait_long() -> None:
        time.sleep(300)

    slow = function(client=client)(wait_long).spawn()
    slow.cancel()
    with pytest.raises(JobError) as ended:
        slow.get(timeout=60)
    assert ended.value.job.state == "CANCELLED"


def test_async_twins(stack: Stack, jobs_key: str) -> None:
    async def main() -> None:
        async with AsyncClient(host=stack.gateway.host, port=stack.gateway.port, api_key=jobs_key) as c:
            squares = function(client=c)(square_or_fail)
            assert await squares.remote.aio(7) == 49
            assert await squares.map.aio([1, 2, 3]) == [1, 4, 9]
            call = await squares.spawn.aio(5)
            assert await call.get() == 25

    asyncio.run(main())


def test_packages_that_do_not_resolve_fail_the_call_with_the_reason(client: Client) -> None:
    broken = function(image=Image(packages=["b9-no-such-package-3f9c"]), client=client)(square_or_fail)
    with pytest.raises(JobError) as err:
        broken.remote(2)
    assert err.value.job.state == "FAILED"
    assert f"job {err.value.job.id} ended FAILED: " in str(err.value)
    assert "b9-no-such-package-3f9c" in str(err.value)


def test_ctrl_c_while_waiting_cancels_the_job(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def wait_long() -> None:
        time.sleep(300)

    submitted: List[str] = []
    create = Jobs.create

    def create_then_interrupt(self: Jobs, *args: Any, **kwargs: Any) -> Any:
        job = create(self, *args, **kwargs)
        submitted.append(job.id)
        # Ctrl+C reaches the main thread while .remote waits for the job.
        main = threading.main_thread().ident or 0
        threading.Timer(1.0, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
        return job

    monkeypatch.setattr(Jobs, "create", create_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        function(client=client)(wait_long).remote()
    assert client.jobs.get(submitted[0]).state == "CANCELLED"
