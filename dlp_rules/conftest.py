"""pytest plugin: every ``<policy>.tests.yaml`` here is collected, one test item per case.

The same cases run with ``vigil dlp test``; this makes them part of the ordinary test suite too.
A known miss is reported as an expected failure (xfail), a fixed known miss as a failure asking to
remove the marker. Each file is checked as `vigil dlp test` checks it
(:func:`~pipelines.dlp.casefile.prepare`): a case that could never pass is a collection error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_ENGINES: dict[Path, Any] = {}


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name.endswith((".tests.yaml", ".tests.yml")):  # as `vigil dlp test` finds them
        return PolicyCaseFile.from_parent(parent, path=file_path)
    return None


class PolicyCaseFile(pytest.File):
    """One case file: it loads, its policy loads and every case could pass, as `vigil dlp test`
    checks them, or the file is a collection error naming the file and line (no traceback)."""

    def collect(self):  # type: ignore[no-untyped-def]
        from pipelines.dlp.casefile import prepare

        cases, _ = prepare(self.path, _ENGINES)
        for i, case in enumerate(cases.spec.cases):
            name = case.name or case.text[:40]
            yield PolicyCase.from_parent(self, name=f"{i + 1}: {name}", casefile=cases, index=i)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        from pipelines.errors import PolicyError

        if isinstance(excinfo.value, PolicyError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class PolicyCase(pytest.Item):
    def __init__(self, *, casefile: Any, index: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.casefile = casefile
        self.index = index

    def runtest(self) -> None:
        from pipelines.dlp.casefile import judge

        case = self.casefile.spec.cases[self.index]
        engine = _ENGINES[self.casefile.policy_path.resolve()]
        # as `vigil dlp test` runs it: a text the engine fails on is this case's failure
        status, problems = judge(case, engine.inspect_each([(case.text, case.scope.to_scope())])[0], engine)
        if status == "known_miss":
            pytest.xfail(f"known miss: {case.note}")
        if status == "fixed":
            raise PolicyCaseFailed(["known miss now passes; remove known_miss"])
        if problems:
            raise PolicyCaseFailed(problems)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, PolicyCaseFailed):
            return "\n".join(f"- {p}" for p in excinfo.value.problems)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        line = self.casefile.lines[self.index] if self.index < len(self.casefile.lines) else 1
        return self.path, line - 1, self.name


class PolicyCaseFailed(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems
