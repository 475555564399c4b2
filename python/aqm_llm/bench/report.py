"""Where benchmark output is kept: a fenced section of a Markdown file, replaced on each run."""

from __future__ import annotations

from pathlib import Path


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
