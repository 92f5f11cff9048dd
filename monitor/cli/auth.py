"""`monitor hash-password`: the scrypt hash of a console password, for `auth.users` in the config."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def add_parser(sub: Subparsers) -> None:
    hashing = sub.add_parser("hash-password", help="print the scrypt hash of a console password (auth.users)")
    hashing.add_argument("--password-stdin", action="store_true", help="read it from stdin instead of a prompt")
    hashing.set_defaults(func=cmd_hash_password)


def cmd_hash_password(args: argparse.Namespace) -> int:
    from monitor.access.sessions import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
    if len(password) < 12:
        print("error: use at least 12 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
