import asyncio
import pytest
from gridllm_nb.core import sync
from .test_cell_output import (test_a_no_wait_run_streams_while_the_next_cell_sleeps_and_its_times_are_the_jobs as t1,
                               test_no_wait_runs_and_a_blocking_cell_stream_side_by_side as t2)


class Old(asyncio.Future):
    pass


@pytest.fixture(autouse=True)
def old_path(monkeypatch):
    def on_kernel_loop(coro, name=None):
        return asyncio.get_running_loop().create_task(coro, name=name)  # today's code: the kernel's loop
    monkeypatch.setattr(sync, "submit", on_kernel_loop)


def test_old1(ip, fake):
    t1(ip, fake)


def test_old2(ip, fake):
    t2(ip, fake)
