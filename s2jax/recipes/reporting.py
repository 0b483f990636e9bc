"""How the recipes name their files in summaries and tables (shared by the DQN and DVS pipelines).

>>> import os
>>> display_path(os.path.join(os.getcwd(), "out", "a.nir")) == os.path.join("out", "a.nir")
True
>>> checkpoint_folder({"files": ["out/a.nir", "out/summary.json"]}) == os.path.join("out", "checkpoints", "")
True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["display_path", "checkpoint_folder"]


def display_path(path) -> str:
    """``path`` relative to the current folder when it lies under it, else absolute (one style for lists)."""
    p = Path(os.path.abspath(path))  # abspath also folds "..", so "../x" counts as outside
    try:
        return str(p.relative_to(os.path.abspath(os.getcwd())))
    except ValueError:
        return str(p)


def checkpoint_folder(summary: dict) -> str:
    """The checkpoint folder of a run, next to its ``summary.json`` (the last file ``summary["files"]``
    lists), with a trailing separator; ``"checkpoints/"`` when the summary lists no file."""
    files = summary.get("files") or []
    return os.path.join(os.path.dirname(files[-1]), "checkpoints", "") if files else "checkpoints/"
