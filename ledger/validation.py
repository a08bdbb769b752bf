"""Input checks of rule 8: names, free text, dates, times, jurisdictions and document hashes."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, time
from pathlib import Path

from ledger.errors import InvalidInput

NAME_MAX = 200
TEXT_MAX = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f\u2028\u2029]")


def check_name(value: str, what: str = "name") -> str:
    return _check_text(value, what, NAME_MAX, allow_newlines=False)


def check_text(value: str, what: str = "text") -> str:
    return _check_text(value, what, TEXT_MAX, allow_newlines=True)


def _check_text(value: str, what: str, limit: int, allow_newlines: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    if not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value)} characters long; at most {limit} are allowed")
    if _CONTROL.search(value) or (not allow_newlines and ("\n" in value or "\t" in value)):
        raise InvalidInput(f"{what} contains a control character")
    return value


def parse_date(value: str | date, what: str = "date") -> date:
    if isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a date (YYYY-MM-DD), not a time")
    if isinstance(value, date):
        return value
    try:
        parsed = date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not an ISO 8601 date (YYYY-MM-DD)") from None
    if not 2000 <= parsed.year <= 2200:
        raise InvalidInput(f"{what} {value!r} is outside the years 2000-2200")
    return parsed


def parse_time(value: str | datetime, what: str = "time") -> datetime:
    """An ISO 8601 time; without a zone it is UTC; a bare date means the end of that day."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{what} {value!r} is not an ISO 8601 time") from None
        if len(text) == 10:
            moment = end_of_day(moment.date())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def end_of_day(day: date) -> datetime:
    """A date without a time means the end of that day, UTC."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def check_jurisdiction(code: str) -> str:
    """ISO 3166-1 alpha-2 (`DE`) or ISO 3166-2 subdivision (`US-CA`)."""
    import pycountry  # loads its data files: keep it off the start-up path

    text = str(code).strip().upper()
    if "-" in text:
        found = pycountry.subdivisions.get(code=text)
    else:
        found = pycountry.countries.get(alpha_2=text) if len(text) == 2 else None
    if found is None:
        raise InvalidInput(
            f"jurisdiction {code!r} is not an ISO 3166 country (DE) or subdivision (US-CA)"
        )
    return text


def sha256_of_file(path: str | Path) -> str:
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"document {str(path)!r} does not exist or is not a file")
    digest = hashlib.sha256()
    try:
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise InvalidInput(f"document {str(path)!r} cannot be read: {error.strerror}") from None
    return digest.hexdigest()


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(value: str) -> str:
    text = str(value).strip().lower()
    if not _SHA256.match(text):
        raise InvalidInput(f"{value!r} is not a SHA-256 hex digest")
    return text
