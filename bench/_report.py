"""What every benchmark script writes: the machine it ran on, and its JSON result."""

from __future__ import annotations

import json
import os
import platform
from typing import Any


def machine() -> str:
    """Processor (or architecture) and core count, e.g. ``"x86_64, 2 cores"``."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def write_json(path: str, result: dict[str, Any]) -> None:
    """Write ``result`` to ``path`` (creating its folder) and say so."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    print(f"wrote {path}")
