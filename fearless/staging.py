"""Files written beside their target, then renamed over it: a reader sees the old file or the
new one, never a part.

Each write stages under a name of its own. A process id alone is shared by the threads of one
process: two releases of one source started together from one process both staged its pack
as `.<digest>.tar.<pid>`, and the second rename found nothing to move (`bench/storm.py`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def staging_path(target: Path) -> Path:
    """A hidden sibling of `target` that no other write uses."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def write_atomically(path: Path, text: str) -> Path:
    """Write beside, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = staging_path(path)
    partial.write_text(text)
    partial.replace(path)
    return path
