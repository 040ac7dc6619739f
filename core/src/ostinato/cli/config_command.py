"""``ostinato config``: the resolved provider configuration."""

from __future__ import annotations

import click

from ostinato.cli.base import echo_json, json_option, state_of
from ostinato.discovery import installed_providers
from ostinato.redaction import redact_setting, redact_settings


# -- config ----------------------------------------------------------------------------------
@click.command("config")
@json_option
@click.pass_context
def config_command(ctx: click.Context, as_json: bool) -> None:
    """Show the resolved provider configuration.

    Prints the provider, its settings and where each value came from, and the installed
    providers. Secrets (passwords, account keys, SAS tokens) show as ``***``.
    """
    config = state_of(ctx).config()
    data = config.to_dict() | {"installed_providers": installed_providers()}
    data["settings"], data["defaults"] = map(redact_settings, (data["settings"], data["defaults"]))
    if as_json:
        echo_json(data)
        return
    lines = [f"Provider: {config.provider}  (from {config.sources.get('provider', 'default')})"]
    lines.append(f"Config file: {config.config_file or 'none'}")
    for key, value in config.settings.items():
        shown = redact_setting(key, value)
        lines.append(f"  {key} = {shown!r}  (from {config.sources.get(key, '?')})")
    for key, value in config.defaults().items():
        lines.append(f"  {key} = {redact_setting(key, value)!r}  (default)")
    lines.append(f"Installed providers: {', '.join(installed_providers())}")
    click.echo("\n".join(lines))
