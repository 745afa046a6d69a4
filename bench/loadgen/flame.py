"""Where a process's CPU goes, from py-spy's collapsed stacks (``py-spy record --format raw``).

Each line of the file is ``frame;frame;...;frame COUNT`` (outermost first), one per
distinct stack. :func:`top_functions` adds them up per function (line numbers
dropped): *self* is the share of samples in which the function was the innermost
frame, *total* the share in which it was anywhere on the stack (counted once per
sample, so recursion does not inflate it).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

__all__ = ["markdown_top", "top_functions"]

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def _key(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3."):
        i = path.find(marker)
        if i >= 0:
            path = path[i + len(marker):].split("/", 1)[-1] if marker.startswith("/lib") else path[i + len(marker):]
            break
    return f"{m.group('name')} ({path})"


def top_functions(path: str | Path, n: int = 15) -> tuple[int, list[tuple[str, float, float]]]:
    """(samples, rows of (function, self %, total %)) for the ``n`` functions with the most self time."""
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    samples = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        samples += c
        frames = [_key(f) for f in stack.split(";") if f]
        if not frames:
            continue
        self_c[frames[-1]] += c
        for k in set(frames):
            total_c[k] += c
    if samples == 0:
        return 0, []
    rows = [(k, v * 100 / samples, total_c[k] * 100 / samples) for k, v in self_c.most_common(n)]
    return samples, rows


def markdown_top(path: str | Path, n: int = 15) -> str:
    samples, rows = top_functions(path, n)
    out = [f"{samples:,} samples of the gateway process (py-spy, on-CPU only).", "",
           "| function | self % | total % |", "|---|---:|---:|"]
    out += [f"| `{name}` | {s:.1f} | {t:.1f} |" for name, s, t in rows]
    return "\n".join(out) + "\n"
