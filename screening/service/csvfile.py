"""Rules to and from CSV: our own format (header row, documented columns) and FreePBX's
blacklist export (one number per line, optional description).

Import is all or nothing: every row is checked first; the first bad one aborts with its line
number, and nothing is written.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal, TextIO, cast

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from screening.core.decision import WEEKDAYS
from screening.core.errors import InvalidInput
from screening.core.numbers import parse_entry
from screening.service import parse
from screening.store import lists, policies
from screening.store.models import GLOBAL, AllowEntry, BlockEntry, DndSchedule
from screening.store.models import NameEntry as NameRow
from screening.store.models import Policy as PolicyRow

Kind = Literal["block", "allow", "dnd", "policy"]
KINDS: tuple[Kind, ...] = ("block", "allow", "dnd", "policy")

#: Columns of our CSV format; import takes any subset that has what each row needs.
COLUMNS = (
    "kind",
    "number",
    "name",
    "extension",
    "code",
    "reason",
    "source",
    "expires",
    "days",
    "from",
    "to",
    "tz",
    "policy",
    "action",
)
_HEADERS: dict[Kind, tuple[str, ...]] = {
    "block": ("kind", "number", "name", "extension", "code", "reason", "source", "expires"),
    "allow": ("kind", "number", "name", "extension", "reason", "source", "expires"),
    "dnd": ("kind", "extension", "days", "from", "to", "tz"),
    "policy": ("kind", "policy", "extension", "action", "code", "source"),
}
_ALIASES = {"description": "reason"}  # FreePBX's blacklist export calls it description


@dataclass
class ImportPlan:
    format: Literal["csv", "freepbx"]
    block: list[lists.NewEntry] = field(default_factory=list)
    allow: list[lists.NewEntry] = field(default_factory=list)
    dnd: list[lists.NewDnd] = field(default_factory=list)
    names: list[policies.NewName] = field(default_factory=list)
    policies: list[policies.NewPolicy] = field(default_factory=list)

    @property
    def total(self) -> int:
        rows = (self.block, self.allow, self.dnd, self.names, self.policies)
        return sum(len(r) for r in rows)


def _header(line: str) -> list[str] | None:
    names = [_ALIASES.get(n.strip().lower(), n.strip().lower()) for n in next(csv.reader([line]))]
    keys = {"number", "extension", "name", "policy"}
    if names and all(n in COLUMNS for n in names) and (keys & set(names)):
        return names
    return None


_CHUNK = 25_000  # lines per unit of work; big enough to amortise a worker round trip
_PARALLEL_FROM = 100_000  # below this, starting worker processes costs more than it saves


def iter_plans(
    lines: Sequence[str], region: str, now: datetime
) -> Iterator[tuple[ImportPlan, int]]:
    """(plan, lines covered) chunk by chunk, in file order. Large files are parsed in worker
    processes (number parsing is CPU-bound), so the caller can write one chunk while the
    next ones are parsed. Raises InvalidInput at the first bad row in file order."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InvalidInput(
            "FILE", "is empty: expected a CSV with a header row, or one number per line"
        )
    names = _header(lines[first])
    body_start = first + 1 if names is not None else 0
    jobs = [
        (names, list(lines[i : i + _CHUNK]), i + 1, region, now)
        for i in range(body_start, len(lines), _CHUNK)
    ] or [(names, [], body_start + 1, region, now)]
    if len(lines) < _PARALLEL_FROM:
        results: Iterator[_Outcome] = map(_parse_job, jobs)
        yield from _unwrap(results, jobs, body_start)
        return
    # fork: workers inherit the loaded modules instead of importing them again.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=context) as pool:
        yield from _unwrap(pool.map(_parse_job, jobs), jobs, body_start)


_Outcome = tuple[ImportPlan | None, tuple[str, str] | None]


def _unwrap(
    results: Iterable[_Outcome], jobs: Sequence[tuple[object, ...]], body_start: int
) -> Iterator[tuple[ImportPlan, int]]:
    for i, (plan, error) in enumerate(results):
        if error is not None:
            raise InvalidInput(*error)
        assert plan is not None
        size = len(jobs[i][1])  # type: ignore[arg-type]
        yield plan, size + (body_start if i == 0 else 0)


def _parse_job(job: tuple[list[str] | None, list[str], int, str, datetime]) -> _Outcome:
    """One chunk, in a worker: errors travel back as (field, detail), which pickles."""
    names, lines, first_lineno, region, now = job
    plan = ImportPlan("csv" if names is not None else "freepbx")
    try:
        if names is None:
            _parse_freepbx(lines, first_lineno, region, now, plan)
        else:
            _parse_csv(lines, first_lineno, names, region, now, plan)
    except InvalidInput as e:
        return None, (e.field, e.detail)
    return plan, None


def _row_error(line: int, column: str, e: InvalidInput) -> InvalidInput:
    return InvalidInput(f"line {line}", f"{column}: {e.detail}")


def _parse_csv(
    lines: Sequence[str],
    first_lineno: int,
    names: list[str],
    region: str,
    now: datetime,
    plan: ImportPlan,
) -> None:
    # One csv.reader per line keeps line numbers exact (a quoted newline would shift them).
    for offset, line in enumerate(lines):
        lineno = first_lineno + offset
        values = next(csv.reader([line]), [])
        if not values or not any(v.strip() for v in values):
            continue
        if len(values) > len(names):
            raise InvalidInput(
                f"line {lineno}", f"has {len(values)} fields but the header has {len(names)}"
            )
        row = dict(zip(names, (v.strip() for v in values), strict=False))
        for free in ("reason", "name", "source"):
            if row.get(free):
                row[free] = text_value(row[free])
        kind = (row.get("kind") or "block").lower()
        if kind not in KINDS:
            raise InvalidInput(
                f"line {lineno}", f"kind: expected block, allow, dnd or policy, got {kind!r}"
            )
        column = "kind"
        try:
            if kind == "policy":
                column = "policy"
                what = row.get("policy", "")
                parse.parse_policy_kind(what, "policy")
                column = "extension"
                ext = parse.parse_extension(row["extension"]) if row.get("extension") else None
                column = "action"
                action = row.get("action") or "reject"
                column = "code"
                new_policy = parse.new_policy(what, action, row.get("code") or None, ext)
                source = row.get("source") or "import"
                plan.policies.append(replace(new_policy, source=source[:32]))
                continue
            if row.get("name") and not row.get("number"):
                column = "name"
                named = parse.new_name(
                    "block" if kind == "block" else "allow",
                    row["name"],
                    extension=row.get("extension") or None,
                    code=(row.get("code") or 607) if kind == "block" else None,
                    reason=row.get("reason") or None,
                    source=(row.get("source") or "import")[:32],
                )
                plan.names.append(named)
                continue
            if kind == "dnd":
                column = "extension"
                ext = parse.parse_extension(row.get("extension", ""), "extension")
                column = "days"
                days = parse.parse_days(row.get("days") or "all")
                column = "from"
                start = parse.parse_hhmm(row.get("from", ""), "from")
                column = "to"
                end = parse.parse_hhmm(row.get("to", ""), "to")
                column = "tz"
                tz = parse.parse_tz(row["tz"]) if row.get("tz") else parse.local_zone()
                plan.dnd.append(lists.NewDnd(ext, days, start, end, tz))
                continue
            column = "number"
            number = row.get("number", "")
            value, is_prefix = parse_entry(number, region)
            column = "extension"
            extension = parse.parse_extension(row["extension"]) if row.get("extension") else None
            column = "code"
            code = parse.parse_code(row.get("code") or 607) if kind == "block" else None
            column = "reason"
            reason = parse.parse_reason(row.get("reason") or None)
            column = "source"
            source = row.get("source") or "import"
            if len(source) > 32:
                raise InvalidInput("source", "expected at most 32 characters")
            column = "expires"
            expires = (
                parse.parse_expires(row["expires"], now, "UTC") if row.get("expires") else None
            )
        except InvalidInput as e:
            raise _row_error(lineno, column, e) from None
        entry = lists.NewEntry(
            number[:64], value, is_prefix, extension, reason, source, expires, code
        )
        (plan.block if kind == "block" else plan.allow).append(entry)


def _parse_freepbx(
    lines: Sequence[str], first_lineno: int, region: str, now: datetime, plan: ImportPlan
) -> None:
    for lineno, line in enumerate(lines, start=first_lineno):
        text = line.strip()
        if not text:
            continue
        # number, then an optional description after a comma, semicolon or tab
        for sep in (",", ";", "\t"):
            if sep in text:
                number, _, description = text.partition(sep)
                break
        else:
            number, description = text, ""
        number = number.strip().strip('"')
        try:
            value, is_prefix = parse_entry(number, region)
            reason = parse.parse_reason(description.strip().strip('"') or None)
        except InvalidInput as e:
            column = "description" if e.field == "reason" else "number"
            raise _row_error(lineno, column, e) from None
        plan.block.append(
            lists.NewEntry(number[:64], value, is_prefix, None, reason, "freepbx import", None, 607)
        )


def import_lines(
    engine: Engine,
    lines: Sequence[str],
    region: str,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportPlan:
    """Parse and write in one transaction, chunk by chunk: a bad row anywhere, or a failure
    part-way, rolls everything back. Returns what was imported (counts and format)."""
    now = now or datetime.now(UTC)
    total = ImportPlan("csv")
    with Session(engine) as session, session.begin():
        for i, (plan, size) in enumerate(iter_plans(lines, region, now)):
            if i == 0:
                total.format = plan.format
            lists.bulk_upsert_entries(session, "block", plan.block, now)
            lists.bulk_upsert_entries(session, "allow", plan.allow, now)
            lists.bulk_add_dnd(session, plan.dnd, now)
            policies.bulk_upsert(session, plan.policies, plan.names, now)
            total.block += plan.block
            total.allow += plan.allow
            total.dnd += plan.dnd
            total.names += plan.names
            total.policies += plan.policies
            if progress is not None:
                progress(size)
    return total


# -- export ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


#: What makes a spreadsheet read a cell as a formula (OWASP, CSV injection), full-width
#: forms included.
_FORMULA = tuple("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def text_cell(text: str) -> str:
    """A free-text value as written to CSV: one more leading ' when, past any quotes it has
    already, it starts like a formula, so that a spreadsheet shows it as text."""
    return f"'{text}" if text.lstrip("'").startswith(_FORMULA) else text


def text_value(cell: str) -> str:
    """What text_cell wrote, read back: one leading ' fewer when it protected a formula."""
    return cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA) else cell


def export(engine: Engine, out: TextIO, kinds: Iterable[Kind] = KINDS) -> dict[str, int]:
    """Write rules as CSV that `screening import` reads back unchanged. Numbers are written
    normalised (prefixes with their *), so the file does not depend on the region; free text
    (reasons, names, sources) is safe to open in a spreadsheet (text_cell)."""
    wanted = list(kinds)
    header = _HEADERS[wanted[0]] if len(wanted) == 1 else COLUMNS
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    counts: dict[str, int] = dict.fromkeys(wanted, 0)
    with Session(engine) as session:
        for kind in wanted:
            if kind == "policy":
                for p in session.scalars(select(PolicyRow).order_by(PolicyRow.id)):
                    writer.writerow(
                        {
                            "kind": "policy",
                            "policy": p.kind,
                            "extension": "" if p.scope == GLOBAL else p.scope,
                            "action": p.action,
                            "code": p.sip_code or "",
                            "source": text_cell(p.source),
                        }
                    )
                    counts[kind] += 1
                continue
            if kind in ("block", "allow"):
                query_names = select(NameRow).where(NameRow.kind == kind).order_by(NameRow.id)
                for n in session.scalars(query_names):
                    writer.writerow(
                        {
                            "kind": kind,
                            "name": text_cell(n.pattern),
                            "extension": "" if n.scope == GLOBAL else n.scope,
                            "code": n.sip_code or "",
                            "reason": text_cell(n.reason or ""),
                            "source": text_cell(n.source),
                        }
                    )
                    counts[kind] += 1
            if kind == "dnd":
                for d in session.scalars(select(DndSchedule).order_by(DndSchedule.id)):
                    days = ",".join(WEEKDAYS[i] for i in range(7) if d.days >> i & 1)
                    writer.writerow(
                        {
                            "kind": "dnd",
                            "extension": d.extension,
                            "days": days,
                            "from": f"{d.start_time:%H:%M}",
                            "to": f"{d.end_time:%H:%M}",
                            "tz": d.tz,
                        }
                    )
                    counts[kind] += 1
                continue
            model: type[BlockEntry | AllowEntry] = BlockEntry if kind == "block" else AllowEntry
            query = select(model).order_by(model.id).execution_options(yield_per=10_000)
            rows = cast("Iterable[BlockEntry | AllowEntry]", session.scalars(query))
            for e in rows:
                writer.writerow(
                    {
                        "kind": kind,
                        "number": e.value + ("*" if e.is_prefix else ""),
                        "extension": "" if e.scope == GLOBAL else e.scope,
                        "code": getattr(e, "sip_code", ""),
                        "reason": text_cell(e.reason or ""),
                        "source": text_cell(e.source),
                        "expires": _iso(e.expires_at),
                    }
                )
                counts[kind] += 1
    return counts


def read_text(stream: TextIO) -> list[str]:
    data = stream.read()
    if data.startswith("\ufeff"):  # spreadsheets like to add a byte-order mark
        data = data[1:]
    return data.splitlines()
