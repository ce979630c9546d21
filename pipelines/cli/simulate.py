"""``vigil simulate``: write deterministic multi-channel traffic (a thin shell over pipelines.simulate)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from pathlib import Path

import click

from pipelines.cli.hints import quoted, vigil_command
from pipelines.progress import Reporter, reporting
from pipelines.simulate import FAULTS_FILE, LABELS_FILE, SIMULATION_FILE, SimulationConfig, Summary, simulate
from pipelines.simulate.config import DEFAULT_START


@click.command(name="simulate")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the event files (created if missing).",
)
@click.option("--days", default=7, show_default=True, help="Number of simulated days (one file per day).")
@click.option(
    "--seed", default=7, show_default=True, help="Seed; the same arguments always give the same bytes."
)
@click.option("--employees", default=12, show_default=True, help="Employees across the simulated firms.")
@click.option("--contacts", default=120, show_default=True, help="Customers of those employees.")
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=DEFAULT_START.isoformat(),
    show_default=True,
    help="First simulated day (UTC).",
)
@click.option(
    "--activity",
    default=1.0,
    show_default=True,
    help="Scale how busy people are (1.0 = a realistic week, 10 = ten times the traffic).",
)
@click.option(
    "--target-events",
    type=click.IntRange(min=100),
    default=None,
    help="Calibrate --activity so the run writes about this many events (e.g. 200000).",
)
@click.option(
    "--inject-pii",
    is_flag=True,
    help=f"Put sensitive values and risky phrases into bodies; ground truth in {LABELS_FILE}.",
)
@click.option(
    "--pii-rate",
    default=0.06,
    show_default=True,
    help="Share of message bodies that get one (with --inject-pii).",
)
@click.option(
    "--inject-faults",
    "fault_rate",
    type=float,
    default=0.0,
    show_default=True,
    metavar="RATE",
    help=f"Deliberately broken lines per good line (0..0.5), listed in {FAULTS_FILE}.",
)
@click.option(
    "--whatsapp-queue-limit",
    default=5,
    show_default=True,
    help="WhatsApp: messages held while an opt-in request is pending.",
)
@click.option(
    "--wechat-queue-limit",
    default=5,
    show_default=True,
    help="WeChat: messages held while a chat is inactive.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier simulation in --out.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def command(
    out_dir: Path,
    days: int,
    seed: int,
    employees: int,
    contacts: int,
    start: dt.datetime,
    activity: float,
    target_events: int | None,
    inject_pii: bool,
    pii_rate: float,
    fault_rate: float,
    whatsapp_queue_limit: int,
    wechat_queue_limit: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Write a deterministic stretch of simulated multi-channel traffic.

    Two firms, their employees and customers exchange SMS, MMS, voicemail, WhatsApp, WeChat, LINE
    and Teams messages under each channel's rules (WhatsApp opt-in and 24-hour window, WeChat pacing
    and inactivity, LINE's contact-initiated chats, ...), one JSON-lines file of events per day.

    \b
    Examples:
      vigil simulate --out demo/events
      vigil simulate --out bench/events --target-events 1000000 --employees 60 --contacts 600
      vigil simulate --out dlp/events --inject-pii --inject-faults 0.01
    """
    config = SimulationConfig(
        days=days,
        seed=seed,
        employees=employees,
        contacts=contacts,
        start=start.date(),
        activity=activity,
        target_events=target_events,
        inject_pii=inject_pii,
        pii_rate=pii_rate,
        inject_faults=fault_rate,
        whatsapp_queue_limit=whatsapp_queue_limit,
        wechat_queue_limit=wechat_queue_limit,
    )
    warning = future_warning(config.end, dt.datetime.now(dt.UTC))
    if warning:
        click.echo(warning, err=True)
    began = time.monotonic()
    with reporting(Reporter(enabled=not quiet)):
        summary = simulate(config, out_dir, overwrite=overwrite)
    click.echo(render_summary(summary, time.monotonic() - began))


def future_warning(end: dt.date, now: dt.datetime, skew_minutes: float = 15.0) -> str | None:
    """A warning when simulated days reach past now (minus ``vigil run``'s default skew):
    ingest dead-letters those events as ``future_timestamp``."""
    limit = now - dt.timedelta(minutes=skew_minutes)
    if dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC) <= limit:
        return None
    return (
        f"warning: the simulated days run until {end - dt.timedelta(days=1)} (UTC), past the current "
        f"time {now:%Y-%m-%d %H:%M} UTC minus {skew_minutes:g} minutes; `vigil run` will dead-letter "
        "those events as future_timestamp (use an earlier --start, or fewer --days)"
    )


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(
        f"{name} {count:,}" for name, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def render_summary(summary: Summary, seconds: float) -> str:
    """The text printed after a run: where the files are, what is in them, what to type next."""
    config, out = summary.config, summary.out_dir
    last = config.start + dt.timedelta(days=config.days - 1)
    rate = summary.events / seconds if seconds > 0 else 0.0
    lines = [
        f"Wrote {summary.events:,} events ({summary.lines:,} lines, {summary.bytes / 2**20:,.1f} MiB) "
        f"to {out} in {seconds:,.1f} s ({rate:,.0f} events/s).",
        f"  days        {config.start} .. {last} ({len(summary.files)} files)",
        f"  channels    {_counts(summary.by_channel)}",
        f"  kinds       {_counts(summary.by_kind)}",
        f"  directions  {_counts(summary.by_direction)}",
    ]
    if config.target_events is not None:
        lines.append(
            f"  activity    {summary.activity:.3f} (calibrated for --target-events {config.target_events:,})"
        )
    if config.inject_faults > 0:
        total = sum(summary.faults.values())
        lines.append(
            f"  faults      {total:,} lines listed in {out / FAULTS_FILE}: {_counts(summary.faults)}"
        )
    if config.inject_pii:
        total = sum(summary.labels.values())
        lines.append(f"  labels      {total:,} spans in {out / LABELS_FILE}: {_counts(summary.labels)}")
    lines += [
        f"  metadata    {out / SIMULATION_FILE}",
        "",
        "Next, archive it:",
        f"  {vigil_command()} run --input {quoted(out)} --archive {quoted(out.parent / 'archive')}",
    ]
    return "\n".join(lines)
