"""Errors the ledger raises on purpose, each with the exit code the command line gives it."""

from __future__ import annotations


class LedgerError(Exception):
    """A refusal a user should read: one line, and an exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(LedgerError, ValueError):
    """The input itself is wrong: a bad amount, date, name, or an unknown id."""

    exit_code = 2


class RuleViolation(LedgerError):
    """The input is well formed, but a rule of the engagement refuses it."""

    exit_code = 3


class NotPermitted(LedgerError):
    """The actor's role may not do this."""

    exit_code = 4


class ConcurrentChange(LedgerError):
    """Other writers kept changing the engagement; the command was not applied."""

    exit_code = 5


class DatabaseUnavailable(LedgerError):
    """The database could not be reached, even after the library's retries."""

    exit_code = 1
