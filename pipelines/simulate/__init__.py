"""``vigil simulate``: deterministic multi-channel traffic for demos, tests and benchmarks.

A seeded world of firms, employees and customers talks over SMS, MMS, voicemail, WhatsApp, WeChat,
LINE and Teams for a number of days. Channel rules (WhatsApp opt-in and the 24-hour window,
WeChat pacing and inactivity, LINE's contact-initiated chats, ...) are pure state machines in
:mod:`pipelines.simulate.channels`; their auto-messages are rendered from the templates in
:mod:`pipelines.automessages`. The output is JSON lines of :class:`pipelines.record.Event`, one file
per day, optionally with injected personal data (and its ground truth) and deliberately broken
lines. Same arguments, same bytes.

Library use::

    from pipelines.simulate import SimulationConfig, simulate, generate
    summary = simulate(SimulationConfig(days=2, seed=1, inject_pii=True), "out/events")
    for emitted in generate(SimulationConfig(days=1)):   # lazily, in time order
        emitted.event, emitted.labels
"""

from __future__ import annotations

from pipelines.simulate.config import DEFAULT_START, SimulationConfig
from pipelines.simulate.engine import generate
from pipelines.simulate.factory import Emitted
from pipelines.simulate.faults import DUPLICATE_KINDS, FAULT_KINDS
from pipelines.simulate.output import (
    FAULTS_FILE,
    LABELS_FILE,
    SIMULATION_FILE,
    Summary,
    events_file,
    simulate,
)
from pipelines.simulate.pii import ENTITIES
from pipelines.simulate.text import Label

__all__ = [
    "DEFAULT_START",
    "DUPLICATE_KINDS",
    "ENTITIES",
    "FAULTS_FILE",
    "FAULT_KINDS",
    "LABELS_FILE",
    "SIMULATION_FILE",
    "Emitted",
    "Label",
    "SimulationConfig",
    "Summary",
    "events_file",
    "generate",
    "simulate",
]
