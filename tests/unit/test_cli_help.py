"""Every command, subcommand, option and positional of `resolver-mesh` has help text."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from resolver_mesh.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str = "resolver-mesh"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _missing_help(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            described = {choice.dest: choice.help for choice in action._choices_actions}
            yield from (f"{path} {name}" for name in action.choices if not described.get(name))
        elif not action.help or action.help == argparse.SUPPRESS:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}"


def test_every_command_and_argument_has_help() -> None:
    parsers = dict(_parsers(build_parser()))
    # the walk reaches every level
    assert {"resolver-mesh hubs put", "resolver-mesh table create", "resolver-mesh demo"} <= set(
        parsers
    )
    missing = [m for path, parser in parsers.items() for m in _missing_help(parser, path)]
    assert missing == []
