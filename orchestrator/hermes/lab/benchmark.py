"""What the benchmarks share: their parser (scripts/benchmark-*.py), the login benchmarks'
options (scripts/benchmark-proxy.py, scripts/benchmark-webmail.py) and the password read from a
file, never from the command line. Standard library only.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def benchmark_parser(description: str | None) -> argparse.ArgumentParser:
    """A benchmark's parser: its module docstring, usage example included, as the description."""
    return argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_login_arguments(parser: argparse.ArgumentParser, *, ca_help: str, logins: int) -> None:
    """--user, --password-file, --ca (``ca_help``: which certificates it signed) and --logins
    (``logins``: how many by default), after the benchmark's own targets."""
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument("--ca", required=True, type=Path, help=ca_help)
    parser.add_argument("--logins", type=int, default=logins)


def read_password(args: argparse.Namespace) -> str:
    """The password in the file given by --password-file, without surrounding white space."""
    path: Path = args.password_file
    return path.read_text().strip()
