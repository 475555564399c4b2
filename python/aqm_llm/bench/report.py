"""Where benchmark output is kept: a fenced section of a Markdown file, replaced on each run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


def save_section(path: Path, text: str, begin: str, end: str, intro: str) -> None:
    """Write ``text`` between the ``begin``/``end`` markers of ``path``, replacing what was there.

    A file without the markers gets the section appended; a new file starts with ``intro``.
    """
    block = f"{begin}\n```text\n{text.rstrip()}\n```\n{end}\n"
    if path.exists():
        old = path.read_text()
        if begin in old and end in old:
            head, rest = old.split(begin, 1)
            path.write_text(head + block + rest.split(end, 1)[1].lstrip("\n"))
            return
        path.write_text(old.rstrip("\n") + "\n\n" + block)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(intro + block)



def publish(text: str, path: Path | None, write: Callable[[Path, str], None]) -> int:
    """Print a benchmark's report and, given a path (--save), write it there with ``write`` (the
    benchmark's own section of its document); the exit status, 0."""
    print(text, end="")
    if path is not None:
        write(path, text)
        print(f"saved to {path}", file=sys.stderr)
    return 0


def add_save_options(parser: argparse.ArgumentParser, document: str) -> None:
    """``--save FILE`` / ``--no-save`` of a benchmark whose report lives in ``document``."""
    parser.add_argument("--save", type=Path, default=None,
                        help="write the output into a section of this Markdown file "
                             f"(default: {document} if ./docs exists)")
    parser.add_argument("--no-save", action="store_true")


def save_path(args: argparse.Namespace, document: str) -> Path | None:
    """Where ``add_save_options``' arguments say the report goes (None: nowhere)."""
    if args.no_save:
        return None
    return args.save or (Path(document) if Path("docs").is_dir() else None)
