"""What every command group shares: the context a command runs in (settings, the engine),
the options several groups take, and output (aligned tables, JSON, local times)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import click

from screening import config
from screening.service import parse
from screening.store import migrate
from screening.store.engine import Engine, make_engine

Record = TypeVar("Record")


class Context:
    def __init__(self, debug: bool, config_file: str | None = None) -> None:
        self.debug = debug
        self.config_file = config_file
        self._loaded: config.Loaded | None = None
        self._engine: Engine | None = None

    @property
    def loaded(self) -> config.Loaded:
        if self._loaded is None:
            self._loaded = config.load_all(path=self.config_file)
        return self._loaded

    @property
    def config(self) -> config.Config:
        return self.loaded.config

    @property
    def region(self) -> str:
        return self.config.default_region

    def engine(self, check_schema: bool = True) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.database_url)
            if check_schema:
                migrate.require_current(self._engine)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def where(self) -> str:
        return config.masked_url(self.config.database_url)


pass_ctx = click.make_pass_decorator(Context)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
for_option = click.option("--for", "extension", metavar="EXT", help="Only for this extension.")


def local(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(parse.local_zone())).strftime("%Y-%m-%d %H:%M")


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> None:
    cells = [["-" if c is None else str(c) for c in r] for r in rows]
    if headers is not None:
        cells.insert(0, [str(h) for h in headers])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_records(
    found: Sequence[Record],
    as_json: bool,
    json_row: Callable[[Record], object],
    none: str,
    headers: Sequence[str],
    row: Callable[[Record], Sequence[object]],
) -> None:
    """Records as JSON for scripts; else the line `none` when there are none, or a table."""
    if as_json:
        print_json([json_row(r) for r in found])
        return
    if not found:
        click.echo(none)
        return
    table(headers, [row(r) for r in found])
