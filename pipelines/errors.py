"""Every error Vigil raises on purpose, in one place.

    VigilError                     base; the CLI prints its message and exits with ``exit_code``
    ├── ConfigError                a flag, option or configuration file is wrong        (exit 2)
    ├── InputError                 input files cannot be read at all                   (exit 2)
    ├── PolicyError                a DLP policy file is invalid                         (exit 2)
    │   └── PolicyTestFailure      a policy's own test cases fail                       (exit 1)
    ├── ModelMissingError          a policy needs a language model that is not installed (exit 2)
    ├── ArchiveError               the archive cannot be written or read                (exit 3)
    │   ├── ArchiveLockedError     another process is writing the archive               (exit 3)
    │   └── IntegrityError         ``vigil verify`` found problems                      (exit 1)
    ├── QueryError                 a search query cannot be parsed or compiled          (exit 2)
    ├── NotFoundError              what was asked for by name is not in the archive     (exit 1)
    └── IndexingError              Elasticsearch rejected the setup or cannot be reached (exit 4)

Messages say what is wrong *and what to do*, because they are what a user reads at 3 a.m.
Records that are merely bad (malformed JSON, unknown channel, ...) are not errors: they become
dead letters with a reason and the run goes on.
"""

from __future__ import annotations


class VigilError(Exception):
    exit_code = 2


class ConfigError(VigilError):
    exit_code = 2


class InputError(VigilError):
    exit_code = 2


class PolicyError(VigilError):
    exit_code = 2


class PolicyTestFailure(PolicyError):
    exit_code = 1


class ModelMissingError(VigilError):
    exit_code = 2


class NotFoundError(VigilError):
    exit_code = 1


class ArchiveError(VigilError):
    exit_code = 3


class ArchiveLockedError(ArchiveError):
    exit_code = 3


class IntegrityError(ArchiveError):
    exit_code = 1

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} integrity problem(s):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nWhat to do: keep the archive as it is (it is the evidence), find out who or what changed "
            "it, and put back what a problem names as altered, missing or cut from a backup or copy of "
            "the archive; move out what was added behind the manifest's back after looking at it; "
            "then check again."
        )


class QueryError(VigilError):
    exit_code = 2


class IndexingError(VigilError):
    exit_code = 4


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling, outermost first (Beam re-raises an
    error in a pipeline step as another one, with the step's name)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is a Ctrl-C, also one Beam re-raised from inside a pipeline step (a
    ``RuntimeError`` "KeyboardInterrupt [while running ...]")."""
    return any(isinstance(c, KeyboardInterrupt) for c in causes(exc))
