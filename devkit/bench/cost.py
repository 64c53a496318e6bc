"""What a benchmark run cost, per process and per database table: the profile of issue 13.

CPU seconds come from /proc (the workers, the dev server and the PostgreSQL backends
connected to the run's database, sampled while they live: a backend that exits between two
samples loses at most one interval). Database work comes from PostgreSQL's statistics views
for the run's own database: transactions committed and, per table, rows written and index or
sequential scans (pg_stat_statements would count statements, but it needs a server restart
with `shared_preload_libraries`, which a shared server does not get)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def backends_of(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving `database` (by its process title,
    `postgres: <user> <database> <client> <state>`)."""
    found: dict[int, float] = {}
    marker = f" {database} ".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes()
            if title.startswith(b"postgres: ") and marker in title:
                found[int(proc.name)] = cpu_seconds(int(proc.name))
        except OSError:
            continue
    return found


@dataclass
class BackendCpu:
    """The CPU the database's backends used since `start`, sampled every `interval`."""

    database: str
    interval: float = 0.5
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        for pid, seconds in backends_of(self.database).items():
            self._first.setdefault(pid, seconds if not self._last else 0.0)
            self._last[pid] = seconds

    def start(self) -> None:
        self._first = backends_of(self.database)
        self._last = dict(self._first)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    @property
    def seconds(self) -> float:
        return sum(last - self._first.get(pid, 0.0) for pid, last in self._last.items())


DATABASE_COUNTERS = text(
    "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_returned,"
    " tup_fetched FROM pg_stat_database WHERE datname = current_database()"
)
TABLE_COUNTERS = text(
    "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, coalesce(idx_scan, 0), seq_scan"
    " FROM pg_stat_user_tables"
)


async def database_counters(session: AsyncSession) -> Counter[str]:
    """The cumulative counters of the current database (statistics as of now: the snapshot
    cache is cleared first)."""
    await session.execute(text("SELECT pg_stat_clear_snapshot()"))
    counters: Counter[str] = Counter()
    row = (await session.execute(DATABASE_COUNTERS)).one()
    for name, value in zip(
        ("commits", "rollbacks", "inserted", "updated", "deleted", "returned", "fetched"),
        row,
        strict=True,
    ):
        counters[name] = int(value)
    for table, ins, upd, dele, idx, seq in await session.execute(TABLE_COUNTERS):
        counters[f"{table}.writes"] = int(ins + upd + dele)
        counters[f"{table}.scans"] = int(idx + seq)
    return counters


def per_entity_lines(counters: Counter[str], entities: int) -> list[str]:
    out = []
    for name in ("commits", "rollbacks", "inserted", "updated", "deleted", "fetched"):
        out.append(f"  {name:<28} {counters[name] / entities:7.2f}")
    tables = sorted({name.split(".")[0] for name in counters if "." in name})
    for table in tables:
        writes, scans = counters[f"{table}.writes"], counters[f"{table}.scans"]
        if writes or scans:
            out.append(
                f"  {table:<28} {writes / entities:7.2f} rows written, {scans / entities:.2f} scans"
            )
    return out
