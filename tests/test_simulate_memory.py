"""The generator is lazy: memory depends on the size of the world, not on how many events it yields."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from pipelines.simulate import SimulationConfig, generate, simulate

WORLD = SimulationConfig(days=3, seed=2, employees=3, contacts=15)


def _peak(run) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        count = run()
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_generate_is_an_iterator_in_time_order() -> None:
    stream = generate(WORLD)
    assert isinstance(stream, Iterator)
    first = [next(stream) for _ in range(50)]
    orders = [e.order for e in first]
    assert orders == sorted(orders)


def test_peak_memory_does_not_grow_with_event_count() -> None:
    small_n, small_peak = _peak(lambda: sum(1 for _ in generate(WORLD, activity=1.0)))
    large_n, large_peak = _peak(lambda: sum(1 for _ in generate(WORLD, activity=6.0)))
    assert large_n > 4 * small_n
    assert large_peak < 1.5 * small_peak, (small_n, small_peak, large_n, large_peak)


def test_writing_streams_to_disk(tmp_path: Path) -> None:
    small_n, small_peak = _peak(lambda: simulate(WORLD, tmp_path / "a").events)
    large_n, large_peak = _peak(lambda: simulate(WORLD.replace(activity=6.0), tmp_path / "b").events)
    assert large_n > 4 * small_n
    assert large_peak < 1.5 * small_peak, (small_n, small_peak, large_n, large_peak)
