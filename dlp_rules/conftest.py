"""pytest plugin: every ``<policy>.tests.yaml`` here is collected, one test item per case.

The same cases run with ``vigil dlp test``; this makes them part of the ordinary test suite too.
A known miss is reported as an expected failure (xfail), a fixed known miss as a failure asking to
remove the marker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_ENGINES: dict[Path, Any] = {}


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name.endswith(".tests.yaml"):
        return PolicyCaseFile.from_parent(parent, path=file_path)
    return None


class PolicyCaseFile(pytest.File):
    def collect(self):  # type: ignore[no-untyped-def]
        from pipelines.dlp.casefile import load_cases

        cases = load_cases(self.path)
        for i, case in enumerate(cases.spec.cases):
            name = case.name or case.text[:40]
            yield PolicyCase.from_parent(self, name=f"{i + 1}: {name}", casefile=cases, index=i)


class PolicyCase(pytest.Item):
    def __init__(self, *, casefile: Any, index: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.casefile = casefile
        self.index = index
        case = casefile.spec.cases[index]
        if case.known_miss:
            self.add_marker(pytest.mark.xfail(reason=f"known miss: {case.note}", strict=True))

    def _engine(self) -> Any:
        from pipelines.dlp import Engine, load_policy_set
        from pipelines.dlp.casefile import _TEST_KEYS

        path = self.casefile.policy_path.resolve()
        if path not in _ENGINES:
            _ENGINES[path] = Engine(load_policy_set(path), hash_key_env=_TEST_KEYS)
        return _ENGINES[path]

    def runtest(self) -> None:
        from pipelines.dlp.casefile import check_case

        case = self.casefile.spec.cases[self.index]
        verdict = self._engine().inspect(case.text, case.scope.to_scope())
        problems = check_case(case, verdict)
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
