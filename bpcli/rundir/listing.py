"""`bpcli runs`: one line for every run and sweep directory in a folder (no torch).

Run directories are named outputs/run1, run2, … by default, which says nothing of what
each holds; the listing reads each one's summary.json (a sweep's sweep.json) and shows
its config, settings, status and where it ended, so a learner can find a run again.
A directory that is not a run is left out; a damaged one is listed as damaged.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpcli import optimizers


@dataclass(frozen=True)
class Listed:
    """One run or sweep directory, as `bpcli runs` shows it."""

    path: Path
    kind: str
    config: str
    settings: str
    status: str
    steps: str
    loss: str
    quality: str


def _natural(path: Path) -> list[Any]:
    """run2 before run10: the name's digits compared as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_runs(folder: Path) -> list[Listed]:
    """Every run and sweep directly inside `folder`, in natural order of their names."""
    found = []
    for path in sorted((p for p in folder.iterdir() if p.is_dir()), key=_natural):
        if (path / "sweep.json").is_file():
            found.append(_sweep(path))
        elif (path / "summary.json").is_file() or (path / "config.yaml").is_file():
            found.append(_run(path))
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value:.{digits}g}" if math.isfinite(value) else str(value)


def _config_name(value: Any) -> str:
    return Path(value).name if isinstance(value, str) and value else "—"


def _run(path: Path) -> Listed:
    summary = _read(path / "summary.json")
    if summary is None:
        return Listed(path, "?", "—", "", "damaged: summary.json unreadable", "—", "—", "—")
    settings = [f"lr {_number(summary.get('lr'))}"]
    if summary.get("optimizer") not in (None, optimizers.DEFAULT):
        settings.append(str(summary["optimizer"]))
    if "seed" in summary:
        settings.append(f"seed {summary['seed']}")
    loss = summary.get("final_loss_all_samples", summary.get("final_loss"))
    return Listed(path, str(summary.get("kind", "?")), _config_name(summary.get("config_file")), ", ".join(settings),
                  str(summary.get("status", "?")), f"{summary.get('steps', '—')}", _number(loss), _quality(summary))


def _quality(summary: dict[str, Any]) -> str:
    """The kind's own measure of the fit on the training data: accuracy or R²."""
    accuracy = (summary.get("accuracy") or {}).get("train") if isinstance(summary.get("accuracy"), dict) else None
    if isinstance(accuracy, (int, float)):
        return f"accuracy {accuracy:.1%}"
    r2 = (summary.get("r2") or {}).get("train") if isinstance(summary.get("r2"), dict) else None
    return f"R² {_number(r2)}" if isinstance(r2, (int, float)) else "—"


def _sweep(path: Path) -> Listed:
    info = _read(path / "sweep.json")
    if info is None:
        return Listed(path, "sweep", "—", "", "damaged: sweep.json unreadable", "—", "—", "—")
    grid = info.get("grid") if isinstance(info.get("grid"), dict) else {}
    settings = "; ".join(f"{key}: {len(values) if isinstance(values, list) else '?'} values"
                         for key, values in grid.items())
    members = info.get("members")
    kind = f"{info.get('kind', '?')} sweep" + (f" ({members})" if isinstance(members, int) else "")
    return Listed(path, kind, _config_name(info.get("config_file")), settings, str(info.get("status", "?")),
                  "—", "—", "—")
