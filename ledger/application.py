"""The application service: load an engagement, check input, role and rules, decide, save.

Checks run in the order of DESIGN rule 9: input (exit 2), role (exit 4), rules (exit 3).
A version conflict (another writer saved first) is retried against the fresh state.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import (IntegrityError, InterfaceError, JSONTranscoder, Mapper,
                                       OperationalError)

from ledger.engagement import Engagement
from ledger.errors import ConcurrentChange, DatabaseUnavailable, InvalidInput, LedgerError
from ledger.events import EngagementEvent, Stamp
from ledger.gc_pause import gc_paused
from ledger.money import parse_amount
from ledger.roles import Action, Actor, check_acts_as_party, check_permitted
from ledger.storage import Database, is_connection_lost, is_lock_timeout, resolve
from ledger.transcodings import register_ledger_transcodings
from ledger.validation import parse_time

if TYPE_CHECKING:
    # Types only: the commands module builds pydantic models (tens of ms), which no reading
    # command needs.
    from ledger.commands import EngagementCommand, OpenEngagement
    from ledger.keyring import Keyring

Clock = Callable[[], datetime]
#: Attempts at one command while other writers keep changing its engagement. With the
#: backoff below that is several seconds of trying before exit 5 (four processes writing to
#: one engagement without pause lost a command now and then at 12 attempts).
MAX_ATTEMPTS = 30
#: A version past any engagement's last: `repository.get(id, version=LATEST)` rebuilds the
#: latest state from the stores (snapshot, then events), bypassing the live cached aggregate.
LATEST = 2**62


def utc_now() -> datetime:
    return datetime.now(UTC)


def project_engagement(engagement: Engagement | None,
                       events: Iterable[EngagementEvent]) -> Engagement | None:
    """The library's `project_aggregate` without its `isinstance(event, CanMutateProtocol)`
    assertion (a runtime-Protocol check, ~12-67 µs an event, up to 199 events a load): every
    event decoded here is one of the engagement's own classes."""
    for event in events:
        engagement = event.mutate(engagement)
    return engagement


class Engagements(Application[UUID]):
    """Every engagement's record, one event-sourced aggregate each."""

    name = "Engagements"
    snapshotting_intervals = {Engagement: 200}
    snapshotting_projectors = {Engagement: project_engagement}
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "1000",
        # Commands check before they change anything, and a failed save evicts the cached
        # engagement, so the cache need not hand out deep copies.
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None) -> None:
        cipher_key = (env or {}).get("CIPHER_KEY")
        #: Contractors' keys on an encrypted ledger (None: personal text is stored plain).
        self.keyring: Keyring | None = None
        if cipher_key:
            from ledger.keyring import Keyring, parse_cipher_key

            self.keyring = Keyring(parse_cipher_key(cipher_key))
        super().__init__(env)
        self.clock: Clock = clock or utc_now
        self._write_lock = threading.RLock()
        self.conflicts_retried = 0
        #: Seconds a statement waits for a lock (set by `open_ledger`; for the messages).
        self.lock_timeout: int | None = None

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_ledger_transcodings(transcoder, self.keyring)

    def construct_mapper(self) -> Mapper:  # type: ignore[type-arg]
        mapper = super().construct_mapper()
        if self.keyring is None:
            return mapper
        from ledger.personal_data import SealingMapper

        return SealingMapper(mapper, self.keyring)

    def contractor_subject(self, name: str) -> str | None:
        """The contractor's key id on an encrypted ledger, made the first time; else None."""
        return self.keyring.subject_for(name) if self.keyring is not None else None

    # Writing --------------------------------------------------------------------------

    def open_engagement(self, command: OpenEngagement, actor: Actor) -> UUID:
        check_permitted(actor, command.action)
        command_id = command.command_id or new_command_id()
        engagement_id = Engagement.create_id(command_id)
        digest = command.digest()
        subject = self.contractor_subject(command.contractor)
        with self._write_lock:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    existing = self._find(engagement_id)
                    if existing is not None:
                        check_same_command(existing, command_id, digest)
                        return engagement_id
                    stamp = Stamp(actor, command_id, digest, self.clock())
                    engagement = Engagement.open(
                        stamp, command.title, command.client, command.contractor,
                        command.curator, parse_amount(command.budget, command.currency),
                        command.currency, command.inspection_days, command.grace_days,
                        subject=subject,
                    )
                    self.save(engagement)
                except IntegrityError:
                    self._note_conflict(attempt)
                    continue
                except (OperationalError, InterfaceError) as error:
                    self._evict(engagement_id)
                    raise self._refusal(error) from None
                return engagement_id
        raise ConcurrentChange("the engagement could not be opened: too many concurrent changes")

    def execute(self, command: EngagementCommand, actor: Actor) -> str | None:
        """Applies one command to its engagement; returns the id it created, if any.

        A version conflict is retried against the fresh state (rule 10). A connection that
        drops is retried by the library's recorder (10 attempts, each waiting for the pool to
        reconnect); when its COMMIT had gone through, the retry meets the primary key like a
        conflict, the engagement is reloaded, and the command id found there is answered as
        the first time (rule 12).
        """
        command_id = command.command_id or new_command_id()
        digest = command.digest()
        engagement_id = command.engagement_id
        with self._write_lock:
            recheck = True  # a refusal on the cached engagement is checked once on fresh state
            for attempt in range(1, MAX_ATTEMPTS + 1):
                unchecked = False  # taken from the cache without asking the database
                try:
                    engagement, unchecked = self._for_command(engagement_id)
                    if command_id in engagement.commands:
                        # A retry: the same command by someone allowed to send it gets the
                        # same answer.
                        answer = check_same_command(engagement, command_id, digest)
                        self._check_role(command, actor)
                        return answer
                    command.check_against(engagement)
                    self._check_role(command, actor)
                    command.before_apply(self, engagement)
                    result = command.apply_to(engagement, Stamp(actor, command_id, digest,
                                                                 self.clock()))
                    self.save(engagement)
                except IntegrityError:
                    self._evict(engagement_id)
                    # Another writer saved first. Back off, unless the engagement came from
                    # the cache unchecked: then it had just moved on since; decide again at once.
                    self._note_conflict(attempt, back_off=not unchecked)
                    continue
                except (OperationalError, InterfaceError) as error:
                    self._evict(engagement_id)
                    raise self._refusal(error) from None
                except LedgerError:
                    self._evict(engagement_id)
                    if unchecked and recheck:  # never refuse on state that may be stale
                        recheck = False
                        continue
                    raise
                except BaseException:
                    self._evict(engagement_id)
                    raise
                return result
        raise ConcurrentChange(f"engagement {engagement_id} kept changing under this command; "
                               f"{MAX_ATTEMPTS} attempts failed")

    def _refusal(self, error: OperationalError | InterfaceError) -> Exception:
        """What a database error that the library's retries did not cure means to a user."""
        if is_lock_timeout(error):
            waited = f" for {self.lock_timeout} s" if self.lock_timeout else ""
            return ConcurrentChange(
                f"another transaction held the event log locked{waited} (the lock timeout, "
                "LEDGER_LOCK_TIMEOUT); nothing was recorded, try again")
        if is_connection_lost(error):
            return DatabaseUnavailable(
                f"lost the database ({one_line(error)}); the command may or may not have been "
                "recorded: send it again with the same --command-id, it is recorded once")
        return error

    @staticmethod
    def _check_role(command: EngagementCommand, actor: Actor) -> None:
        check_permitted(actor, command.action)
        if command.party is not None:
            check_acts_as_party(actor, command.party)

    def sweep(self, what: str, actor: Actor, engagement_id: UUID | str | None = None,
              command_id: str | None = None) -> list[tuple[UUID, str]]:
        """Runs a sweep on one engagement or on all; returns what each recorded."""
        from ledger.commands import Sweep

        check_permitted(actor, Action.SWEEP)
        # An empty id given is an unknown engagement, not "all of them".
        ids = ([parse_engagement_id(engagement_id)] if engagement_id is not None
               else list(self.engagement_ids()))
        command_id = new_command_id() if command_id is None else command_id
        recorded = []
        for one_id in ids:
            result = self.execute(Sweep.build(engagement_id=one_id, what=what,
                                              command_id=command_id), actor)
            if result:
                recorded.append((one_id, result))
        return recorded

    def forget_contractor(self, name: str, actor: Actor, reason: str,
                          engagement_ids: list[UUID], command_id: str | None = None) -> list[UUID]:
        """Crypto-shreds a contractor: records `ContractorKeyDestroyed` on each of their
        engagements among `engagement_ids`, then deletes their key. Returns the engagements
        that recorded it now (a retry skips those that already had)."""
        from ledger.commands import ForgetContractor
        from ledger.errors import RuleViolation

        check_permitted(actor, Action.ADMINISTER)
        ForgetContractor.build(engagement_id=UUID(int=0), reason=reason)  # the reason, as input
        if self.keyring is None:
            raise RuleViolation("this ledger is not encrypted: personal text is stored plain and "
                                "cannot be forgotten without rewriting history (set "
                                "LEDGER_CIPHER_KEY before recording; see the README)")
        subjects = self.keyring.subjects_of(name)
        if not subjects:
            raise InvalidInput(f"no contractor named {name!r} has a key on this ledger "
                               "(never recorded here, or already forgotten)")
        command_id = command_id or new_command_id()
        recorded = []
        for engagement_id in engagement_ids:
            engagement = self._load(engagement_id)
            if engagement.subject not in subjects or engagement.contractor_forgotten:
                continue
            self.execute(ForgetContractor.build(engagement_id=engagement_id, reason=reason,
                                                command_id=command_id), actor)
            recorded.append(engagement_id)
        self.keyring.forget(subjects)
        for engagement_id in engagement_ids:  # no decoded text stays in this process's cache
            self._evict(engagement_id)
        return recorded

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """The library's `Application.save`, step for step, except that an engagement's events
        are collected directly: `ProcessingEvent.collect_events` tests every object against
        two runtime-checkable Protocols, and such an `isinstance` walks the Protocol's members
        (about 10 us a command, 3-4 % of it on SQLite)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if type(obj) is Engagement:
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # (deprecated in the library; kept as it does)
        return recordings

    def save_many(self, engagements: list[Engagement]) -> None:
        """Saves several engagements built in memory in one transaction (bulk work, the demo)."""
        self.save(*engagements)

    # Reading --------------------------------------------------------------------------

    def engagement(self, engagement_id: UUID | str, actor: Actor, version: int | None = None,
                   at: str | datetime | None = None) -> Engagement:
        """The engagement now, after event `version`, or as it stood at time `at`."""
        check_permitted(actor, Action.READ)
        engagement_id = parse_engagement_id(engagement_id)
        if version is None and at is None:
            # The cached engagement is live (commands change it in place), so a reader gets
            # its own, rebuilt from the latest snapshot and the events after it: a deep copy
            # of a 10,000-event engagement took 65 ms, this about a third of that.
            try:
                return self._rebuilt(engagement_id, LATEST)
            except AggregateNotFoundError:
                raise InvalidInput(f"no engagement {engagement_id}") from None
        current = self._load(engagement_id)
        if at is not None:
            version = self.version_at(engagement_id, at, current)
        if not 1 <= version <= current.version:  # type: ignore[operator]
            raise InvalidInput(f"version {version} does not exist: this engagement has "
                               f"versions 1 to {current.version}")
        return self._rebuilt(engagement_id, version)  # type: ignore[arg-type]

    def _rebuilt(self, engagement_id: UUID, version: int) -> Engagement:
        """The engagement after event `version`, from the latest snapshot at or before it and
        the events after that (never the live cached one)."""
        with gc_paused():  # a long engagement's snapshot is ~300,000 objects, none garbage
            return self.repository.get(engagement_id, version=version,
                                       projector_func=project_engagement)

    def version_at(self, engagement_id: UUID, at: str | datetime,
                   current: Engagement | None = None) -> int:
        moment = parse_time(at, "--at")
        current = current or self._load(engagement_id)
        if moment < current.created_on:
            raise InvalidInput(f"{moment.isoformat()} is before the engagement was opened "
                               f"({current.created_on.isoformat()})")
        if moment >= current.modified_on:
            return current.version
        version = 1
        for event in self.events.get(engagement_id):
            if event.timestamp > moment:
                break
            version = event.originator_version
        return version

    def history(self, engagement_id: UUID | str, actor: Actor) -> Iterator[EngagementEvent]:
        check_permitted(actor, Action.READ)
        engagement_id = parse_engagement_id(engagement_id)
        self._load(engagement_id)
        return self.events.get(engagement_id)  # type: ignore[return-value]

    def engagement_ids(self) -> Iterator[UUID]:
        """Every engagement's id, in the order they were opened (from the notification log)."""
        start = 1
        while True:
            page = self.recorder.select_notifications(start=start, limit=1000)
            if not page:
                return
            for notification in page:
                if notification.originator_version == 1:
                    yield notification.originator_id
            start = page[-1].id + 1

    def count_events(self) -> int:
        return self.recorder.max_notification_id() or 0

    # Internals ------------------------------------------------------------------------

    def _find(self, engagement_id: UUID) -> Engagement | None:
        try:
            return self.repository.get(engagement_id, projector_func=project_engagement)
        except AggregateNotFoundError:
            return None

    def _for_command(self, engagement_id: UUID) -> tuple[Engagement, bool]:
        """The engagement a command decides on, and whether it came from the cache unchecked.

        Commands take the cached engagement as it is, without asking the database for newer
        events (a round trip per command, 7-17 % of it): when another process has moved it
        on, the save meets the primary key (`IntegrityError`) and `execute` evicts and decides
        again on fresh state; a refusal is checked once more on fresh state before it is
        reported. Readers keep fast-forwarding (`_load`).
        """
        cache = self.repository.cache
        if cache is not None:
            try:
                return cache.get(engagement_id), True
            except KeyError:
                pass
        return self._load(engagement_id), False

    def _load(self, engagement_id: UUID) -> Engagement:
        found = self._find(engagement_id)
        if found is None:
            raise InvalidInput(f"no engagement {engagement_id}")
        return found

    def _evict(self, engagement_id: UUID) -> None:
        cache = self.repository.cache
        if cache is not None:
            try:
                cache.get(engagement_id, evict=True)
            except KeyError:
                pass

    def _note_conflict(self, conflicts: int = 1, back_off: bool = True) -> None:
        """Backs off before the next attempt, at random and longer after each conflict (up to
        a quarter of a second): writers that collided do not collide again in step, and a
        writer that keeps losing the race leaves room for the others to finish."""
        self.conflicts_retried += 1
        if back_off:
            time.sleep(random.uniform(0.001, min(0.25, 0.01 * 2 ** (conflicts - 1))))


def check_same_command(engagement: Engagement, command_id: str, digest: str) -> str | None:
    """A command id seen before: the same command is answered as before; another is refused."""
    recorded_digest, result = engagement.commands[command_id]
    if recorded_digest != digest:
        raise InvalidInput(f"command id {command_id!r} was already used for a different command")
    return result


def parse_engagement_id(value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{value!r} is not an engagement id (a UUID)") from None


def new_command_id() -> str:
    """A random (version 4) UUID as text, as `str(uuid.uuid4())` gives, without building a
    `UUID` object (its Python constructor was a few per cent of a command)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def open_ledger(url: str | None = None, clock: Clock | None = None,
                database: Database | None = None) -> Engagements:
    """Opens the ledger on a database URL, creating its tables once if they are missing."""
    database = database or resolve(url)
    env = dict(database.env)
    cipher_key = os.environ.get("LEDGER_CIPHER_KEY", "").strip()
    if cipher_key:
        from ledger.keyring import parse_cipher_key

        parse_cipher_key(cipher_key)  # a malformed key is refused before anything opens
        env.update(CIPHER_TOPIC="eventsourcing.cipher:AESCipher", CIPHER_KEY=cipher_key)
    if database.is_postgres:
        from ledger.storage import prepare_postgres

        # Tables first, then the application: the recorder registers its composite types
        # when it starts, so it must start after they exist.
        prepare_postgres(database, lambda: _construct(database, {**env, "CREATE_TABLE": "yes"}).close())
        env["CREATE_TABLE"] = "no"
    app = _construct(database, env, clock)
    app.database = database  # type: ignore[attr-defined]
    app.lock_timeout = database.lock_timeout
    try:
        check_encryption(app, database)
    except BaseException:
        app.close()
        raise
    return app


def check_encryption(app: Engagements, database: Database) -> None:
    """An encrypted ledger opens only with its key; an unencrypted one only without a key."""
    from ledger.keyring import key_store_for

    store = key_store_for(database, app.recorder)
    if app.keyring is not None:
        app.keyring.attach(store)
        app.keyring.check(ledger_has_events=app.count_events() > 0)
    elif store.holds_check():
        raise InvalidInput("this ledger is encrypted: set LEDGER_CIPHER_KEY to the key it was "
                           "created with")


def _construct(database: Database, env: dict[str, str], clock: Clock | None = None) -> Engagements:
    try:
        return Engagements(env=env, clock=clock)
    except LedgerError:
        raise
    except Exception as error:  # the library reports connection problems in many ways
        raise LedgerError(f"cannot open the ledger at {database.url}: {one_line(error)}") from None


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def describe_result(result: Any) -> str:
    return "" if result is None else str(result)
