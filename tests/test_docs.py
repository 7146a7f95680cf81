"""Every command of the CLI is documented: --help works, shows an example and the README names it.

The commands are collected from the click group itself (recursively: every ``plot`` subcommand
too), so a new command is checked without editing this file (sqlite-utils' tests/test_docs.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mcexplore.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _paths(group: click.Group, prefix=()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        path = prefix + (name,)
        out.append(path)
        if isinstance(cmd, click.Group):
            out += _paths(cmd, path)
    return out


COMMANDS = _paths(main)


def test_the_walk_finds_every_command():
    names = {" ".join(p) for p in COMMANDS}
    assert {"run", "replay", "exact", "info", "bench", "sweep", "compare", "plot", "plot riskmap",
            "plot curve", "plot cdf"} <= names


def _help(path) -> str:
    r = CliRunner().invoke(main, [*path, "--help"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_help_has_an_example(path):
    cmd = " ".join(path)
    lines = [ln.strip() for ln in _help(path).splitlines()]
    pat = re.compile(rf"^mcexplore {re.escape(cmd)}(\s|$)")
    assert any(pat.match(ln) for ln in lines), f"`mcexplore {cmd} --help` shows no example line `mcexplore {cmd} ...`"


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_readme_mentions_the_command(path):
    cmd = " ".join(path)
    assert re.search(rf"mcexplore {re.escape(cmd)}(\s|`|$)", README, re.M), f"README.md never mentions `mcexplore {cmd}`"
