"""engine.run_main: the scan's result comes back without Python's runner building its repr."""

from __future__ import annotations

import asyncio
import threading

from scanner.engine import run_main


class Big:
    """Stands for a Report: counts how often its repr is built."""

    reprs = 0

    def __repr__(self) -> str:
        Big.reprs += 1
        return "Big()"


async def produce() -> Big:
    await asyncio.sleep(0)
    return Big()


def test_the_result_comes_back_and_its_repr_is_never_built():
    assert threading.current_thread() is threading.main_thread()  # where asyncio installs its handler
    Big.reprs = 0
    result = run_main(produce())
    assert isinstance(result, Big)
    assert Big.reprs == 0


def test_plain_asyncio_run_builds_it_which_is_why_run_main_exists():
    # If a later Python stops building the repr, run_main is no longer needed: this test says so.
    Big.reprs = 0
    asyncio.run(produce())
    assert Big.reprs > 0


def test_an_exception_of_the_main_coroutine_reaches_the_caller():
    async def fail() -> None:
        raise ValueError("broken")

    try:
        run_main(fail())
    except ValueError as exc:
        assert str(exc) == "broken"
    else:
        raise AssertionError("the exception was swallowed")
