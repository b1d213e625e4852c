"""Schemas of what the controller applies: the ``controller:``, ``radar:`` and ``power:`` sections.

``ControllerCfg`` holds the loop rate, the state machine file, allocation, gains, the
output guard, freshness and lag monitoring and the real-time knobs; ``RadarCfg`` the
radar fusion, tracking and keep-out guard; ``PowerCfg`` the battery limits on arming.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from controller.config.common import MAX_STALE_AFTER_PERIODS, MIN_STALE_AFTER_PERIODS, PosFloat, Strict


class GainsCfg(Strict):
    """PD gains of the pose controller (world frame), plus approach limits."""

    kp_n_per_m: PosFloat = 1.6
    kd_n_per_mps: PosFloat = 4.0
    kp_nm_per_rad: PosFloat = 0.5
    kd_nm_per_radps: PosFloat = 0.6
    max_position_error_m: PosFloat = 0.25
    max_yaw_error_rad: PosFloat = 0.5


class AllocationCfg(Strict):
    """Allocator choice: ``exact`` (weighted least squares, least thrust) or ``pinv_clip``.

    ``axis_weights`` weight the wrench error per axis (Fx, Fy, Mz on the planar rig).
    ``axis_priorities`` (``exact`` only) lists groups of axis names, highest first, e.g.
    ``[[Mz], [Fx, Fy]]`` keeps the yaw torque before the planar force when a demand cannot
    be met; axes not named form a last group. Names are checked against the geometry when
    the rig is built.
    """

    method: Literal["exact", "pinv_clip"] = "exact"
    axis_weights: list[PosFloat] | None = Field(default=None, max_length=6)
    axis_priorities: list[Annotated[list[str], Field(max_length=6)]] | None = Field(default=None, max_length=6)


class OutputGuardCfg(Strict):
    """Limits enforced by the output guard, the last word before the thruster bus."""

    max_thrust_rate_n_per_s: PosFloat = 50.0
    #: Consecutive non-finite setpoints before ``fault`` (SAFETY.md O03 "repeated -> safe").
    max_nonfinite_ticks: Annotated[int, Field(ge=1, le=10)] = 3


class SafetyCfg(Strict):
    """Freshness and lag monitoring (SAFETY.md defaults).

    ``stale_after_periods``: a watched stream is stale after this many missed periods,
    2..5 (SAFETY.md B01-B03: 3). ``max_overruns_per_s``: more overruns than this in one
    second is "system lagging" -> safe, 1..10 (SAFETY.md T02: 5), and below the tick rate
    (checked by :func:`load_rig`).
    """

    stale_after_periods: Annotated[int, Field(ge=MIN_STALE_AFTER_PERIODS, le=MAX_STALE_AFTER_PERIODS)] = 3
    max_overruns_per_s: Annotated[int, Field(ge=1, le=10)] = 5


class RealtimeKnobsCfg(Strict):
    """Real-time knobs of the controller process, applied at the start of a real-time run.

    Nothing is asked by default. ``sched_fifo_priority`` asks for SCHED_FIFO at that
    priority (1..99, sched(7)); ``cpu_affinity`` pins the control thread to these CPU ids
    (1..64 distinct ids >= 0; whether they exist is checked on the machine, at start);
    ``mlockall`` locks current and future pages (mlockall(2)); ``gc_freeze`` runs a full
    collection then moves every object to the permanent generation (``gc.freeze``);
    ``spin_before_deadline_us`` makes the loop sleep until that long before each tick's
    deadline and busy-wait from there (hides the OS wake-up latency below it, costs up to
    that much CPU per tick; 0 = plain sleep). A knob the OS refuses is reported in
    ``summary.json`` and the run goes on (controller/rt_knobs.py, docs/realtime.md).
    """

    sched_fifo_priority: Annotated[int, Field(ge=1, le=99)] | None = None
    cpu_affinity: list[Annotated[int, Field(ge=0, le=4095)]] | None = Field(default=None, min_length=1, max_length=64)
    mlockall: bool = False
    gc_freeze: bool = False
    spin_before_deadline_us: Annotated[int, Field(ge=0, le=5000)] = 0

    @field_validator("cpu_affinity")
    @classmethod
    def _distinct_cpus(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("CPU ids must be distinct")
        return v


class ControllerCfg(Strict):
    """The control loop: rate, state machine file, allocation, gains and guards."""

    rate_hz: Annotated[float, Field(ge=1.0, le=2000.0)] = 100.0
    fsm: str = "fsm_configs/qiki_vehicle.yaml"
    allocation: AllocationCfg = Field(default_factory=AllocationCfg)
    gains: GainsCfg = Field(default_factory=GainsCfg)
    output_guard: OutputGuardCfg = Field(default_factory=OutputGuardCfg)
    safety: SafetyCfg = Field(default_factory=SafetyCfg)
    post_timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    realtime: RealtimeKnobsCfg = Field(default_factory=RealtimeKnobsCfg)
    #: ``qiki run`` runs ``qiki doctor`` (1 s jitter probe) before the build and refuses to
    #: arm when a check failed; the report goes to summary.json and run.mcap (docs/doctor.md).
    require_doctor: bool = False


class RadarCfg(Strict):
    """Radar fusion, tracking and the keep-out guard (issue 3)."""

    sr_threshold_m: PosFloat = 4.0
    keep_out_radius_m: PosFloat = 0.6
    min_ttc_s: PosFloat = 2.0
    confirm_m: Annotated[int, Field(ge=1, le=50)] = 3
    confirm_n: Annotated[int, Field(ge=1, le=50)] = 5
    delete_misses: Annotated[int, Field(ge=1, le=100)] = 5
    meas_std_m: PosFloat = 0.3
    q_accel_mps2: PosFloat = 0.5


class PowerCfg(Strict):
    """Arming and mission limits on the battery (issue 5, SAFETY.md O01)."""

    min_soc_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 30.0
    mission_min_soc_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 15.0
    max_temperature_c: Annotated[float, Field(ge=-40.0, le=150.0)] = 55.0
