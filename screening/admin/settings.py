"""`screening config`: the settings in force and the reference of every setting."""

from __future__ import annotations

import click

from screening import config
from screening.admin.common import Context, json_option, pass_ctx, print_json, table


@click.group("config")
def config_group() -> None:
    """The settings in force."""


@config_group.command("reference")
def config_reference() -> None:
    """Print every setting: its key, variable, default and meaning (a Markdown table)."""
    click.echo(config.reference(), nl=False)


@config_group.command("show")
@json_option
@pass_ctx
def config_show(ctx: Context, as_json: bool) -> None:
    """Print every setting, its value (secrets hidden) and where it came from."""
    loaded = ctx.loaded
    rows = [
        (s.key, s.env, config.shown(s, loaded.values[s.key]), loaded.sources[s.key])
        for s in config.SETTINGS
    ]
    if as_json:
        print_json(
            {
                "file": loaded.file,
                "settings": [
                    {"key": k, "variable": v, "value": value, "from": where}
                    for k, v, value, where in rows
                ],
            }
        )
        return
    click.echo(f"settings file: {loaded.file or '(none)'}")
    table(["KEY", "VARIABLE", "VALUE", "FROM"], rows)
