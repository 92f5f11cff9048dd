"""Reading many OIDs and whole table columns, with a cost that is bounded whatever the agent does.

`walk_columns` walks several columns at once with GETBULK (row-major answers: one request brings
`max_repetitions` rows of every column still open) or GETNEXT on v1. A column ends when the agent
answers outside it, endOfMibView, or an OID that does not increase (a broken agent would otherwise
loop forever); the whole walk stops at `max_varbinds` and at the deadline. `get_many` splits a GET
into requests of at most `per_request` OIDs and copes with v1's noSuchName error.
"""

from __future__ import annotations

from collections.abc import Sequence

from probes.snmp import ber
from probes.snmp.ber import OID, Value
from probes.snmp.transport import Session, SnmpError, SnmpErrorStatus

NO_SUCH_NAME = 2  # v1 error-status


class WalkLimit(SnmpError):
    """The agent sent more than the walk may read."""


def _is_value(value: Value) -> bool:
    return value[0] not in ber.EXCEPTIONS


async def get_many(session: Session, oids: Sequence[OID], deadline: float, per_request: int = 40) -> dict[OID, Value]:
    """Values of the OIDs that exist (missing ones are simply absent)."""
    out: dict[OID, Value] = {}
    for start in range(0, len(oids), per_request):
        chunk = list(oids[start : start + per_request])
        while chunk:
            try:
                varbinds = await session.get(chunk, deadline)
            except SnmpErrorStatus as exc:
                # v1 answers a missing OID with noSuchName and the index of the first culprit: drop it, ask again
                if exc.status == NO_SUCH_NAME and 1 <= exc.index <= len(chunk):
                    del chunk[exc.index - 1]
                    continue
                raise
            for oid, value in varbinds:
                if _is_value(value):
                    out[oid] = value
            break
    return out


def _under(oid: OID, column: OID) -> bool:
    return len(oid) > len(column) and oid[: len(column)] == column


async def walk_columns(
    session: Session,
    columns: Sequence[OID],
    deadline: float,
    max_repetitions: int = 25,
    max_varbinds: int = 50_000,
) -> dict[OID, dict[OID, Value]]:
    """{column: {index: value}} for every column (an absent column maps to {})."""
    result: dict[OID, dict[OID, Value]] = {c: {} for c in columns}
    cursor: dict[OID, OID] = {c: c for c in columns}  # last OID seen per open column
    open_columns = list(columns)
    seen = 0
    use_bulk = session.version != "1"
    while open_columns:
        request = [cursor[c] for c in open_columns]
        if use_bulk:
            # keep one answer under ~1,500 varbinds: agents cap the message size and split anyway
            reps = max(1, min(max_repetitions, 1500 // len(open_columns)))
            varbinds = await session.get_bulk(request, reps, deadline)
        else:
            try:
                varbinds = await session.get_next(request, deadline)
            except SnmpErrorStatus as exc:
                if exc.status == NO_SUCH_NAME and 1 <= exc.index <= len(open_columns):  # v1: end of the MIB
                    del open_columns[exc.index - 1]
                    continue
                raise
        if not varbinds:
            break
        width = len(open_columns)
        finished: set[OID] = set()
        before = seen
        for position, (oid, value) in enumerate(varbinds):
            column = open_columns[position % width]
            if column in finished:
                continue
            if value[0] == ber.END_OF_MIB_VIEW or not _under(oid, column) or oid <= cursor[column]:
                finished.add(column)
                continue
            result[column][oid[len(column) :]] = value
            cursor[column] = oid
            seen += 1
        if seen > max_varbinds:
            raise WalkLimit(f"walk stopped after {seen} values (limit {max_varbinds})")
        if seen == before and not finished:  # no column moved on: a broken agent, stop rather than ask again
            break
        open_columns = [c for c in open_columns if c not in finished]
    return result
