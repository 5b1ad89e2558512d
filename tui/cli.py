"""``zart-tui``'s command line: its parser on its own (no textual import), so the docs generate its options."""
from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``zart-tui`` (also run by ``zart tui``)."""
    parser = argparse.ArgumentParser(
        prog="zart-tui", description="Live terminal monitor of zart_nb journals: every journal of ./.zart/ by "
                                     "default, read through the engine that runs it or from the file.")
    parser.add_argument("target", nargs="?", help="a journal file, or a folder whose .duckdb files it shows "
                                                  "(default: ./.zart/)")
    parser.add_argument("--journal", metavar="PATH", help="a journal file, or a folder of them (as TARGET)")
    return parser
