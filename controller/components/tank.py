"""The propellant tank-pressure sensor as a component: POST, freshness, low tank, arming.

The sensor says how much gas is left upstream of the thrusters. Its rules:

* POST: a fresh, steady, plausible ``TANK_Status`` (SAFETY.md D05);
* ``<name>.stale`` (fault, outside ``boot``): no accepted ``TANK_Status`` for
  ``stale_after_periods`` x the DBC cycle time, wrong counters or a broken rhythm
  (SAFETY.md B01-B03: a sensor we cannot hear is a sensor we cannot trust);
* ``<name>.implausible`` (fault, outside ``boot``): the transducer's fault bit, or a
  pressure above the tank's rating;
* ``<name>.low`` (fault, in ``armed``/``active``): pressure below ``min_pressure_bar``;
* arming refused below ``min_pressure_bar`` or without a usable reading (SAFETY.md O01).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from controller.components.seam import ARMING_STATES, ComponentBase, Condition, DevicePost, TickView, condition
from firmware_bridge.protocols.tank_pressure import implausible_reason
from hal.snapshot import JsonValue, State, part

if TYPE_CHECKING:
    from hal.devices.tank_pressure import TankPressureDriver


class TankEmulatorSummary(Protocol):
    """What the component asks of an emulated sensor (the rig's truth, for the summary)."""

    def summary(self) -> dict[str, object]:
        """Return the emulated truth at the end of the run."""
        ...


class TankComponent(ComponentBase):
    """Runtime logic of one tank-pressure sensor.

    Parameters
    ----------
    name : str
        Device name in the rig: POST key, condition prefix, ``summary.json`` block.
    driver : TankPressureDriver
        Driver on the sensor's CAN bus (registered with the port by the rig).
    min_pressure_bar : float
        Least pressure to arm and to keep flying (bar).
    emulated : TankEmulatorSummary, optional
        The emulated sensor on a virtual rig (adds an ``emulated`` block to the summary).
    """

    def __init__(self, name: str, driver: TankPressureDriver, min_pressure_bar: float,
                 emulated: TankEmulatorSummary | None = None) -> None:
        self.name = name
        self.driver = driver
        self.min_pressure_bar = float(min_pressure_bar)
        self.emulated = emulated

    def snapshot(self) -> State:
        """Return the driver's state (the component keeps none of its own; issue 12 part 4)."""
        return {"driver": self.driver.snapshot()}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`."""
        self.driver.restore(part(state, "driver"))

    def post(self, view: TickView) -> Mapping[str, DevicePost]:
        """POST of the sensor: a fresh, steady, plausible reading (D05)."""
        ok, reason = self.driver.post_report(view.now_s)
        return {self.name: DevicePost(ok, reason)}

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Outside ``boot``: stale and implausible; in an arming state: low tank. Per tick."""
        if view.state == "boot":
            return ()
        d = self.driver
        now_s = view.now_s
        stale = d.stale_reason(now_s)
        reading = d.reading
        bad = None if stale is not None or reading is None else implausible_reason(reading, d.max_pressure_bar)
        out = [
            condition(f"{self.name}.stale", None if stale is None else f"tank pressure sensor {stale}"),
            condition(f"{self.name}.implausible", None if bad is None else f"tank pressure sensor: {bad}"),
        ]
        if view.state in ARMING_STATES:
            p = d.pressure_bar(now_s)
            low = p is not None and p < self.min_pressure_bar
            out.append(condition(f"{self.name}.low", f"tank pressure {p:.1f} bar below the minimum "
                                 f"{self.min_pressure_bar:.1f} bar" if low else None))
        return out

    def arming_check(self, view: TickView) -> str | None:
        """Refuse arming without a usable reading or below ``min_pressure_bar`` (O01)."""
        p = self.driver.pressure_bar(view.now_s)
        if p is None:
            return "tank pressure unknown (sensor stale or implausible)"
        if p < self.min_pressure_bar:
            return f"tank pressure {p:.1f} bar below the minimum {self.min_pressure_bar:.1f} bar"
        return None

    def summary(self) -> Mapping[str, object]:
        """Return the sensor's block of ``summary.json``.

        Last reading, pressure extremes, ingress counters, and on an emulated rig the
        tank's true end pressure (``emulated``).
        """
        r = self.driver.reading
        out: dict[str, object] = {
            "last_pressure_bar": None if r is None else round(r.pressure_bar, 2),
            "last_temperature_c": None if r is None else round(r.temperature_c, 1),
            "min_pressure_bar_limit": self.min_pressure_bar,
            **self.driver.stats(),
        }
        if self.emulated is not None:
            out["emulated"] = self.emulated.summary()
        return out
