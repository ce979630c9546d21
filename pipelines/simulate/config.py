"""What a simulation run is asked to produce, checked up front with errors that say how to fix them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from pipelines.errors import ConfigError
from pipelines.record import EARLIEST_TIME

DEFAULT_START = dt.date(2026, 1, 5)  # a Monday; fixed so the same arguments give the same bytes
EARLIEST_START = EARLIEST_TIME.date()
LATEST_START = dt.date(9997, 12, 31)  # a year of days, and the hours after them, stay in the calendar
MAX_ACTIVITY = 10_000
MAX_TARGET_EVENTS = 1_000_000_000  # about a terabyte of JSON lines


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """Arguments of one ``vigil simulate`` run. Everything that shapes the output is in here."""

    days: int = 7
    seed: int = 7
    employees: int = 12
    contacts: int = 120
    start: dt.date = DEFAULT_START
    #: Multiplies how often conversations get going; 1.0 is a realistic week.
    activity: float = 1.0
    #: If set, ``activity`` is calibrated so the run writes roughly this many events.
    target_events: int | None = None
    inject_pii: bool = False
    #: Share of message bodies that get an injected sensitive value or risky phrase.
    pii_rate: float = 0.06
    #: Share of lines that are deliberately broken (0 disables fault injection).
    inject_faults: float = 0.0
    #: WhatsApp: employee messages held while an opt-in request is pending.
    whatsapp_queue_limit: int = 5
    #: WeChat: employee messages held while a chat is inactive.
    wechat_queue_limit: int = 5

    def __post_init__(self) -> None:
        _check(1 <= self.days <= 366, f"--days must be between 1 and 366, got {self.days}")
        _check(1 <= self.employees <= 10_000, f"--employees must be 1..10000, got {self.employees}")
        _check(
            self.employees <= self.contacts <= 1_000_000,
            f"--contacts must be at least --employees ({self.employees}) and at most 1000000, "
            f"got {self.contacts}",
        )
        _check(
            0 < self.activity <= MAX_ACTIVITY,
            f"--activity must be above 0 and at most {MAX_ACTIVITY} (1.0 is normal), got {self.activity}",
        )
        _check(
            self.target_events is None or 100 <= self.target_events <= MAX_TARGET_EVENTS,
            f"--target-events must be between 100 and {MAX_TARGET_EVENTS}, got {self.target_events}",
        )
        _check(0 <= self.pii_rate <= 1, f"--pii-rate is a share between 0 and 1, got {self.pii_rate}")
        _check(
            0 <= self.inject_faults <= 0.5,
            f"--inject-faults is broken lines per good line, between 0 and 0.5, got {self.inject_faults}",
        )
        for name in ("whatsapp_queue_limit", "wechat_queue_limit"):
            value = getattr(self, name)
            _check(0 <= value <= 100, f"--{name.replace('_', '-')} must be 0..100, got {value}")
        _check(0 <= self.seed < 2**63, f"--seed must be a non-negative integer below 2**63, got {self.seed}")
        _check(
            EARLIEST_START <= self.start <= LATEST_START,
            f"--start must be between {EARLIEST_START} (the archive refuses earlier timestamps) and "
            f"{LATEST_START}, got {self.start}",
        )

    @property
    def end(self) -> dt.date:
        """First day after the simulated span."""
        return self.start + dt.timedelta(days=self.days)

    def replace(self, **changes: Any) -> SimulationConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["start"] = self.start.isoformat()
        return data


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
