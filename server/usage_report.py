"""``pregbridge usage-report``: which client systems use the register, how, and what they would need upstream.

A health organisation moving from PREG to Folkeregisteret's Persontjenesten must map which of its systems
depend on the person register and limit what each receives. The report answers that from what pregbridge
already keeps: one row per account (a client system: SOAP user, HL7 sender's account, Filematch user),
for the audit records at or after ``--since`` (all when not given):

- ``profile``: the account's access profile now (``?`` for an account deleted since its calls);
- ``faces`` and ``operations``: the faces it called and each operation with its number of calls;
- ``calls``, ``refused`` (calls whose outcome was not a success: a fault, a NAK, a refusal),
  ``persons_returned`` (identity numbers returned, summed over the calls), ``first`` and ``last`` call;
- ``elements``: the information elements actually released to it — its profile's elements when any call
  returned a person, none otherwise (a system that only ever got refusals or empty answers received
  nothing); with ``max_protection``, the highest address protection level it sees unmasked;
- ``parts``: the Persontjenesten information parts those elements need (upstream/parts.py: the API's
  ``informationParts``, its data-minimisation switch) — what the system's own access to the API would
  have to be granted.

Accounts without calls in the period are listed too (calls 0): a configured system that no longer calls
is a finding as well. The counts are read with GROUP BY in the store (one pass over the period's events).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, case, func, select

from server.access.profiles import AccessProfile
from store import schema as s
from store.engine import read_connection
from upstream.parts import information_parts

__all__ = ["COLUMNS", "SUCCESS", "AccountUsage", "usage_report"]

SUCCESS = frozenset({"ok", "AA", "CA"})
COLUMNS = ("account", "profile", "faces", "operations", "calls", "refused", "persons_returned", "first", "last",
           "elements", "max_protection", "parts")


@dataclass(slots=True)
class AccountUsage:
    account: str
    profile: str
    faces: set[str] = field(default_factory=set)
    operations: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    refused: int = 0
    persons_returned: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    elements: tuple[str, ...] = ()
    max_protection: str | None = None
    parts: tuple[str, ...] = ()

    def row(self, fmt: str) -> dict[str, Any]:
        ops: Any = dict(sorted(self.operations.items(), key=lambda kv: (-kv[1], kv[0])))
        if fmt != "json":
            ops = [f"{op}={n}" for op, n in ops.items()]
        return {"account": self.account, "profile": self.profile, "faces": sorted(self.faces), "operations": ops,
                "calls": self.calls, "refused": self.refused, "persons_returned": self.persons_returned,
                "first": self.first, "last": self.last, "elements": list(self.elements),
                "max_protection": self.max_protection, "parts": list(self.parts)}


def usage_report(engine: Engine, profiles: Mapping[str, AccessProfile],
                 since: dt.datetime | None = None) -> list[AccountUsage]:
    """One :class:`AccountUsage` per account (existing, or named by an audit record of the period), by name."""
    e = s.audit_event
    ok = e.c.outcome.in_(sorted(SUCCESS))
    returned = func.coalesce(func.sum(func.json_array_length(e.c.returned)), 0)
    q = (select(e.c.account, e.c.face, e.c.operation, func.count().label("calls"),
                func.sum(case((ok, 0), else_=1)).label("refused"), returned.label("returned"),
                func.min(e.c.at).label("first"), func.max(e.c.at).label("last"))
         .where(e.c.account.is_not(None)).group_by(e.c.account, e.c.face, e.c.operation))
    if since is not None:
        q = q.where(e.c.at >= (since.astimezone(dt.UTC).replace(tzinfo=None) if since.tzinfo else since))
    with read_connection(engine) as conn:
        accounts = {r.username: r.profile for r in conn.execute(select(s.account.c.username, s.account.c.profile))}
        groups = conn.execute(q).all()
    usage = {name: AccountUsage(name, profile) for name, profile in accounts.items()}
    for g in groups:
        u = usage.setdefault(g.account, AccountUsage(g.account, "?"))
        u.faces.add(g.face)
        u.operations[g.operation] = u.operations.get(g.operation, 0) + int(g.calls)
        u.calls += int(g.calls)
        u.refused += int(g.refused or 0)
        u.persons_returned += int(g.returned or 0)
        u.first = g.first if u.first is None else min(u.first, g.first)
        u.last = g.last if u.last is None else max(u.last, g.last)
    for u in usage.values():
        profile = profiles.get(u.profile)
        if profile is None:
            continue
        u.max_protection = profile.max_protection if "addresses" in profile.elements else None
        if u.persons_returned:
            u.elements = tuple(sorted(profile.elements))
            u.parts = information_parts(u.elements)
    return [usage[name] for name in sorted(usage)]
