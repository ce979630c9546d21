"""``vigil compact``: merge small archive files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("compact")
@click.option(
    "--archive", type=click.Path(file_okay=False, path_type=Path), required=True, help="Archive folder."
)
@click.option(
    "--target-rows",
    type=click.IntRange(min=1),
    default=500_000,
    show_default=True,
    help="Largest merged file, in rows.",
)
@click.option(
    "--min-files",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="Merge a partition once it has this many small files.",
)
def command(archive: Path, target_rows: int, min_files: int) -> None:
    """Rewrite each partition's small files as one sorted file, in one commit (the manifest records
    the new files and retires the old ones)."""
    from pipelines.archive.compact import compact
    from pipelines.archive.reader import require_archive

    report = compact(require_archive(archive), target_rows=target_rows, min_files=min_files)
    if report.recovered:
        click.echo(report.recovered, err=True)
    if report.commit is None:
        click.echo(
            "nothing to compact: "
            + (
                f"no partition has {min_files} or more files under {target_rows:,} rows "
                f"({report.live_files:,} file(s) in {report.live_partitions:,} partition(s))"
                if report.live_files
                else "the archive holds no data files yet"
            )
            + "; no commit was made"
        )
        return
    click.echo(
        f"compacted {report.files_before} file(s) in {report.partitions} partition(s) into "
        f"{report.files_after} ({report.rows:,} rows, records and dead letters together); "
        f"commit {report.commit}"
    )
