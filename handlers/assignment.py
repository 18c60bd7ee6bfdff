"""Whose turn it is: the round-robin position of each department the app assigns deals from.

The solar installer's finance department gets every deal that needs a loan, one person after
the other; the experts' firm spreads inquiries over a division's staff. The
``assign_from_department`` robot reads who is at work and asks ``next_in_turn`` whom to
give the deal to. The position is one row per (portal, department, with sub-departments or
not) in ``assignment_turns``: the last person given a deal, and a turn counter the update is
conditioned on (compare-and-set), so any number of workers, in any number of processes,
take turns one at a time and the position survives restarts. The database, not Redis,
keeps it: Redis is the app's queue and cache (it may run without persistence), while the
database is where the app keeps what must not be lost, and CLEAN=1 on uninstall removes
the portal's rows with the rest.

The position is a person, not an index: the next turn goes to the first person after the
last one in ID order, so someone joining, leaving or coming back from a vacation does not
shift everybody else's turn.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Float, Integer, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.context import Context
from app.errors import TryAgain
from app.registry import Capability
from app.store import metadata

ATTEMPTS = 200  # compare-and-set rounds before giving up (each loses only to a winner)

assignment_turns = Table(
    "assignment_turns",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("department_id", BigInteger, primary_key=True),
    Column("subtree", Integer, primary_key=True),  # 1: the department with its sub-departments
    Column("turn", BigInteger, nullable=False),  # the CAS version: +1 on every change
    Column("last_user_id", BigInteger, nullable=False),  # 0: nobody yet
    Column("previous_user_id", BigInteger, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Turn:
    """One turn taken: who got it, the turn's number, and who had the turn before."""

    department_id: int
    subtree: bool
    user_id: int
    turn: int
    previous_user_id: int


def next_in_turn(
    ctx: Context, department_id: int, candidates: Iterable[int], *, subtree: bool = False
) -> Turn:
    """Take the next turn among ``candidates`` (the people at work now): the first one after
    the last person served, in ID order, and record it. Safe under concurrency: of two
    workers taking the same turn, one wins and the other takes the next one."""
    people = sorted({int(c) for c in candidates})
    if not people:
        raise ValueError("nobody to take a turn")
    key = _key(ctx, department_id, subtree)
    for attempt in range(ATTEMPTS):
        with ctx.store.engine.connect() as db:
            row = db.execute(
                select(assignment_turns.c.turn, assignment_turns.c.last_user_id).where(*key)
            ).first()
        if row is None:
            chosen = people[0]
            try:
                with ctx.store.engine.begin() as db:
                    db.execute(
                        insert(assignment_turns).values(
                            member_id=ctx.member_id,
                            department_id=department_id,
                            subtree=int(subtree),
                            turn=1,
                            last_user_id=chosen,
                            previous_user_id=0,
                            updated_at=time.time(),
                        )
                    )
            except IntegrityError:
                continue  # another worker took the first turn: take the next
            return Turn(department_id, subtree, chosen, 1, 0)
        turn, last = int(row.turn), int(row.last_user_id)
        chosen = next((p for p in people if p > last), people[0])
        with ctx.store.engine.begin() as db:
            done = db.execute(
                update(assignment_turns)
                .where(*key, assignment_turns.c.turn == turn)
                .values(
                    turn=turn + 1,
                    last_user_id=chosen,
                    previous_user_id=last,
                    updated_at=time.time(),
                )
            )
        if done.rowcount == 1:
            return Turn(department_id, subtree, chosen, turn + 1, last)
        time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))  # lost the race: again
    raise TryAgain(f"department {department_id}: too many workers taking turns at once")


def give_back(ctx: Context, taken: Turn) -> bool:
    """Undo a turn whose deal could not be assigned (the portal failed), when nobody has
    taken a turn since: the retry gives the deal to the same person. True when undone."""
    key = _key(ctx, taken.department_id, taken.subtree)
    with ctx.store.engine.begin() as db:
        done = db.execute(
            update(assignment_turns)
            .where(*key, assignment_turns.c.turn == taken.turn)
            .values(
                turn=taken.turn + 1,
                last_user_id=taken.previous_user_id,
                updated_at=time.time(),
            )
        )
    return done.rowcount == 1


def position(ctx: Context, department_id: int, *, subtree: bool = False) -> Turn | None:
    """The department's current position (who was served last), None before the first."""
    with ctx.store.engine.connect() as db:
        row = db.execute(select(assignment_turns).where(*_key(ctx, department_id, subtree))).first()
    if row is None:
        return None
    return Turn(department_id, subtree, int(row.last_user_id), int(row.turn),
                int(row.previous_user_id))  # fmt: skip


def _key(ctx: Context, department_id: int, subtree: bool) -> tuple:
    return (
        assignment_turns.c.member_id == ctx.member_id,
        assignment_turns.c.department_id == int(department_id),
        assignment_turns.c.subtree == int(subtree),
    )


CAPABILITY = Capability(name="assignment")
