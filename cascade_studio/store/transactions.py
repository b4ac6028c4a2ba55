"""One write transaction, or a savepoint inside the one already open: a repository method that stores
all-or-nothing on its own also does so as a part of a larger unit (a traffic log file: its tasks,
trajectories and requests together)."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator

_names = itertools.count(1)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or, inside an open transaction, SAVEPOINT ... RELEASE; on an error
    everything since the start is undone and the error goes on."""
    if conn.in_transaction:
        name = f"part_{next(_names)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
