from __future__ import annotations

import asyncio

import pytest

from streamsend.uploader.budget import ByteBudget


async def test_acquires_within_the_budget_do_not_wait() -> None:
    seen: list[int] = []
    budget = ByteBudget(100, on_change=seen.append)
    await budget.acquire(60)
    await budget.acquire(40)
    assert budget.used == 100
    budget.release(60)
    assert seen == [60, 100, 40]


async def test_a_full_budget_makes_senders_wait_in_order() -> None:
    budget = ByteBudget(100)
    await budget.acquire(100)
    order: list[str] = []

    async def take(name: str, size: int) -> None:
        await budget.acquire(size)
        order.append(name)

    first = asyncio.create_task(take("first", 80))
    await asyncio.sleep(0)
    second = asyncio.create_task(take("second", 10))  # would fit before "first", but must not overtake it
    await asyncio.sleep(0.01)
    assert order == []
    budget.release(100)
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and budget.used == 90


async def test_a_chunk_larger_than_the_budget_passes_alone() -> None:
    budget = ByteBudget(100)
    await budget.acquire(500)
    waiter = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    budget.release(500)
    await waiter


async def test_a_cancelled_waiter_gives_way() -> None:
    budget = ByteBudget(100)
    await budget.acquire(100)
    blocked = asyncio.create_task(budget.acquire(50))
    behind = asyncio.create_task(budget.acquire(50))
    await asyncio.sleep(0)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    budget.release(100)
    await behind
    assert budget.used == 50


async def test_a_reservation_is_released_once_whoever_releases_it() -> None:
    budget = ByteBudget(100)
    reservation = await budget.reserve(60)
    assert budget.used == 60
    reservation.release()
    reservation.release()
    assert budget.used == 0


async def test_a_group_reservation_splits_into_parts_released_on_their_own() -> None:
    budget = ByteBudget(100)
    first, second = (await budget.reserve(70)).split([30, 40])
    first.release()
    assert budget.used == 40
    second.release()
    second.release()
    assert budget.used == 0
    with pytest.raises(ValueError, match="released"):
        first.split([30])
