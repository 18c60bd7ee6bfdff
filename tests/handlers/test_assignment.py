"""Round-robin positions without a portal: whose turn it is, in ID order, kept in the app's
real database (SQLite, or PostgreSQL with TEST_DATABASE_URL), fair when four threads or
four processes take turns at the same moment."""

from __future__ import annotations

import multiprocessing
import secrets
import threading
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from app.store import Store
from handlers import assignment

OFFICERS = [11, 12, 13, 14]


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def store(database_url: str, secret: str) -> Store:
    return Store(database_url, secret)


def portal(store: Store, member_id: str = "solar") -> Any:
    """What the capability's functions use of a context: the store and the portal."""
    return SimpleNamespace(store=store, member_id=member_id)


def turns(ctx: Any, candidates: list[int], n: int, department: int = 7) -> list[int]:
    return [assignment.next_in_turn(ctx, department, candidates).user_id for _ in range(n)]


def test_turns_go_round_in_id_order(store: Store) -> None:
    ctx = portal(store)
    assert assignment.position(ctx, 7) is None
    assert turns(ctx, [13, 11, 12], 5) == [11, 12, 13, 11, 12]
    turn = assignment.position(ctx, 7)
    assert (turn.user_id, turn.turn, turn.previous_user_id) == (12, 5, 11)


def test_the_position_is_a_person_so_changes_in_the_team_shift_nobody(store: Store) -> None:
    ctx = portal(store)
    assert turns(ctx, [11, 12, 13, 14], 2) == [11, 12]
    # 13 goes on vacation: after 12 comes 14, then the round starts again.
    assert turns(ctx, [11, 12, 14], 2) == [14, 11]
    # 13 is back and a new colleague (15) joins: 12, 13, 14, 15 follow 11 in order.
    assert turns(ctx, [11, 12, 13, 14, 15], 5) == [12, 13, 14, 15, 11]
    # The last one served left the company: the next after them still goes first.
    assert turns(ctx, [12, 13], 1) == [12]
    with pytest.raises(ValueError):
        assignment.next_in_turn(ctx, 7, [])


def test_a_turn_given_back_goes_to_the_same_person(store: Store) -> None:
    ctx = portal(store)
    first = assignment.next_in_turn(ctx, 7, OFFICERS)
    assert assignment.give_back(ctx, first) is True  # the portal failed: undo
    again = assignment.next_in_turn(ctx, 7, OFFICERS)
    assert again.user_id == first.user_id == 11
    taken = assignment.next_in_turn(ctx, 7, OFFICERS)
    later = assignment.next_in_turn(ctx, 7, OFFICERS)  # someone took a turn since
    assert assignment.give_back(ctx, taken) is False
    assert (taken.user_id, later.user_id) == (12, 13)
    assert turns(ctx, OFFICERS, 1) == [14]


def test_positions_are_per_portal_department_and_subtree(store: Store) -> None:
    solar, experts = portal(store, "solar"), portal(store, "experts")
    assert turns(solar, OFFICERS, 2, department=7) == [11, 12]
    assert turns(experts, OFFICERS, 1, department=7) == [11]
    assert turns(solar, OFFICERS, 1, department=8) == [11]
    with_teams = assignment.next_in_turn(solar, 7, OFFICERS, subtree=True)
    assert with_teams.user_id == 11
    assert turns(solar, OFFICERS, 1, department=7) == [13]


def test_the_position_survives_a_restart(database_url: str, secret: str, store: Store) -> None:
    assert turns(portal(store), OFFICERS, 3) == [11, 12, 13]
    store.engine.dispose()  # the worker goes away; a new process opens the database
    assert turns(portal(Store(database_url, secret)), OFFICERS, 2) == [14, 11]


def _fair(taken: list[tuple[int, int]], people: list[int], total: int) -> None:
    """Shares differ by at most one, and nobody gets a second turn before everyone had one."""
    assert sorted(t for t, _ in taken) == list(range(1, total + 1))  # each turn taken once
    order = [user for _, user in sorted(taken)]
    shares = Counter(order)
    assert set(shares) == set(people) and max(shares.values()) - min(shares.values()) <= 1
    for start in range(0, total - len(people) + 1, len(people)):
        assert sorted(order[start : start + len(people)]) == people, order


def test_four_threads_taking_twenty_turns_at_once_share_them_evenly(store: Store) -> None:
    ctx = portal(store)
    taken: list[tuple[int, int]] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            turn = assignment.next_in_turn(ctx, 7, OFFICERS)
            taken.append((turn.turn, turn.user_id))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(taken) == 20
    _fair(taken, OFFICERS, 20)


def _process(database_url: str, secret: str, start: Any, out: Any) -> None:
    store = Store(database_url, secret)  # a worker process: its own engine and connections
    ctx = portal(store)
    start.wait()
    for _ in range(5):
        turn = assignment.next_in_turn(ctx, 7, OFFICERS)
        out.put((turn.turn, turn.user_id))
    store.engine.dispose()


def test_four_worker_processes_taking_twenty_turns_at_once_share_them_evenly(
    database_url: str, secret: str, store: Store
) -> None:
    assert assignment.position(portal(store), 7) is None  # the tables exist before the fork
    store.engine.dispose()
    mp = multiprocessing.get_context("fork")
    start, out = mp.Barrier(4), mp.Queue()
    workers = [mp.Process(target=_process, args=(database_url, secret, start, out))
               for _ in range(4)]  # fmt: skip
    for w in workers:
        w.start()
    taken = [out.get(timeout=60) for _ in range(20)]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    _fair(taken, OFFICERS, 20)
