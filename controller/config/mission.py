"""Schema and loader of a mission file: waypoints flown in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from controller.config.common import MAX_WAYPOINTS, Strict
from controller.paths import resolve_data_path
from controller.yamlio import load_model


class WaypointCfg(Strict):
    """A pose to reach (world frame) and how long to hold it once reached."""

    x_m: Annotated[float, Field(ge=-100.0, le=100.0)]
    y_m: Annotated[float, Field(ge=-100.0, le=100.0)]
    yaw_deg: Annotated[float, Field(ge=-360.0, le=360.0)] = 0.0
    hold_s: Annotated[float, Field(ge=0.0, le=3600.0)] = 0.0


class MissionCfg(Strict):
    """A mission: waypoints flown in order, with reach tolerances and a time limit."""

    name: str
    waypoints: list[WaypointCfg] = Field(min_length=1, max_length=MAX_WAYPOINTS)
    reach_tolerance_m: Annotated[float, Field(gt=0.0, le=10.0)] = 0.03
    reach_speed_mps: Annotated[float, Field(gt=0.0, le=10.0)] = 0.03
    reach_yaw_tolerance_deg: Annotated[float, Field(gt=0.0, le=180.0)] = 5.0
    timeout_s: Annotated[float, Field(gt=0.0, le=86_400.0)] = 300.0


def load_mission(path: str | Path) -> MissionCfg:
    """Load and validate a mission file (raises :class:`ConfigError`, one line)."""
    return load_model(MissionCfg, resolve_data_path(path), str(path))
