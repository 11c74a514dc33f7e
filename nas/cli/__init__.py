"""`nas` command line: parse arguments, call the library, print. No logic lives here.

Each module in this package adds its subcommands through `register(subparsers)`; they are found
automatically, so a new command is one new file. User errors print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from nas.dsl.errors import SpecError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in the project's one-line error form."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise SpecError(message, where=self.prog, hint=f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    from nas import __version__

    parser = _Parser(prog="nas", description="Neural architecture search: spaces, search, scaling, export.")
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = _Subcommands(parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser))
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


class _Subcommands:
    """Adds the global options to every subcommand too, so `nas train ... --quiet` works as well."""

    def __init__(self, action):
        self._action = action

    def add_parser(self, *args, **kwargs):
        parser = self._action.add_parser(*args, **kwargs)
        parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
        return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        # a process's arguments cannot hold NUL, but main() is also called in-process: a path with one would
        # otherwise reach os.stat as a ValueError
        bad = next((a for a in (sys.argv[1:] if argv is None else argv) if "\0" in str(a)), None)
        if bad is not None:
            raise SpecError(f"argument {str(bad)!r} contains a NUL byte", "arguments", "no path or value can hold one")
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
