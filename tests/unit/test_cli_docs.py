"""Every command of both CLIs has help with an example and is described in docs/cli.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cloud.cli import main as hub_main
from edge.cli import main as edge_main

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command, list[str]]]:
    for name, command in sorted(group.commands.items()):
        path = [*prefix.split()[1:], name]
        yield f"{prefix} {name}", command, path
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


ALL = [*commands(edge_main, "marquee-edge"), *commands(hub_main, "marquee-hub")]


@pytest.mark.parametrize(("name", "command", "path"), ALL, ids=[name for name, _, _ in ALL])
def test_command_has_help_with_an_example_and_is_documented(name: str, command: click.Command,
                                                            path: list[str]) -> None:
    root = edge_main if name.startswith("marquee-edge") else hub_main
    result = CliRunner().invoke(root, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"{name} --help shows no example"
    assert f"`{name}" in DOCS, f"docs/cli.md does not describe {name}"
