"""The ``backprop`` argument parser: one subcommand per module."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .._version import __version__
from . import devices, evaluate, gradcheck, predict, train

__all__ = ["PROG", "Parser", "build_parser"]

PROG = "backprop"

EPILOG = """examples:
  backprop train                                   # the digits classifier: about 98% test accuracy
  backprop train --checkpoint run.npz --plot run.png
  backprop evaluate --checkpoint run.npz
  backprop predict --checkpoint run.npz --input new.csv --output labels.csv
  backprop gradcheck --layers 16,3 --activation tanh
  backprop devices

Each command has its own --help. Exit status: 0 success, 1 failure (the reason is printed),
2 invalid arguments.
"""


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one paragraph: ``backprop train: error: argument
    --lr: ... (see backprop train --help)``, exit status 2. Subcommand parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser for every command; each sets ``run`` (the function to call) in the namespace."""
    parser = Parser(
        prog=PROG,
        description="Neural networks with explicit, hand-written backpropagation, from the command line.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    modules = (train, evaluate, predict, gradcheck, devices)
    names = ",".join(module.__name__.rsplit(".", 1)[-1] for module in modules)
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar=f"{{{names}}}", required=True)
    for module in modules:
        module.register(subparsers)
    return parser
