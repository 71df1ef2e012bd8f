"""The SQLAlchemy store: shown-card log and feedback, SQLite by default, PostgreSQL in production.

Writes are idempotent (the same card or feedback item stored twice is stored once) and
committed before the HTTP answer goes out, so a 2xx means the data is on disk. The one
exception is the hook route's card log, which :mod:`cds.store.write_behind` writes just after
the answer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    Delete,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from cds.protocol.wire import FeedbackItem
from cds.settings import Settings
from cds.store.protocol import PREVIEW_PREFIX, CallRecord, CardHistory, ShownCard, WithheldCard

__all__ = [
    "SqlStore",
    "hook_calls",
    "jwt_replay",
    "make_engine",
    "metadata",
    "open_store",
    "withheld_cards",
]

metadata = MetaData()
# The newest migration in cds/store/migrations/versions: the schema the tables below describe.
SCHEMA_HEAD = "0003_burden"

shown_cards = Table(
    "shown_cards",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("service_id", String(100), nullable=False),
    Column("rule_id", String(100), nullable=False),
    Column("rule_version", String(20), nullable=False),
    Column("hook", String(40), nullable=False),
    Column("hook_instance", String(100), nullable=False),
    Column("indicator", String(10), nullable=False),
    Column("patient_key", String(64)),
    Column("shown_at", DateTime(timezone=True), nullable=False),
    Column("fingerprint", String(32)),  # of the facts that fired the card (cds.call.findings)
    Index("ix_shown_cards_rule_time", "rule_id", "shown_at"),
    Index("ix_shown_cards_patient", "patient_key", "rule_id"),
)

# Cards a call produced but did not return: silent-mode rules, repeats within the rule's
# interval, cards suppressed by feedback on the same facts. The burden report counts them.
withheld_cards = Table(
    "withheld_cards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(100), nullable=False),
    Column("rule_id", String(100), nullable=False),  # the card key: a rule or a finding
    Column("rule_version", String(20), nullable=False),
    Column("hook", String(40), nullable=False),
    Column("hook_instance", String(100), nullable=False),
    Column("indicator", String(10), nullable=False),
    Column("patient_key", String(64)),
    Column("fingerprint", String(32)),
    Column("reason", String(20), nullable=False),  # silent, repeat, suppressed
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_withheld_cards_time", "at"),
)

# One row per service call (a chart open for patient-view): the denominator of the burden.
hook_calls = Table(
    "hook_calls",
    metadata,
    Column("hook_instance", String(100), primary_key=True),
    Column("service_id", String(100), primary_key=True),
    Column("hook", String(40), nullable=False),
    Column("patient_key", String(64)),
    Column("cards", Integer, nullable=False),
    Column("called_at", DateTime(timezone=True), nullable=False),
    Index("ix_hook_calls_time", "called_at"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_key", String(64), nullable=False, unique=True),
    Column("service_id", String(100), nullable=False),
    Column("card_uuid", String(200), nullable=False),
    Column("hook_instance", String(100)),  # from the shown-card log, when the card is known
    Column("outcome", String(20), nullable=False),
    Column("accepted_suggestions", Text, nullable=False),
    Column("override_code", String(100)),
    Column("override_system", String(300)),
    Column("override_display", String(300)),
    Column("override_comment", Text),
    Column("outcome_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_feedback_card", "card_uuid"),
    Index("ix_feedback_outcome_time", "outcome_at"),
)


# Client JWT ids seen while their token is valid: replicas share it, so a token replayed
# against another replica is refused too. Keys are digests of (iss, jti).
jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("token_key", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_jwt_replay_expires", "expires_at"),
)

_REPLAY_PURGE_SECONDS = 300.0


def _item_key(service_id: str, item: FeedbackItem) -> str:
    """Identity of a feedback item: the same report posted twice has the same key."""
    reason = item.override_reason
    parts: list[Any] = [
        service_id,
        item.card,
        item.outcome,
        sorted(s.id for s in item.accepted_suggestions),
        reason.reason.code if reason and reason.reason else None,
        reason.user_comment if reason else None,
        item.outcome_timestamp,
    ]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


def not_preview(column: Any) -> Any:
    """A condition leaving out the preview page's own calls (see ``PREVIEW_PREFIX``)."""
    return ~column.startswith(PREVIEW_PREFIX, autoescape=True)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_time(value: str) -> datetime:
    """In UTC: SQLite keeps a date-time without its offset, so every stored time is UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class SqlStore:
    def __init__(self, engine: Engine, suppressing_reasons: Collection[str] = ()) -> None:
        self.engine = engine
        self.suppressing_reasons = frozenset(suppressing_reasons)
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._next_replay_purge = 0.0

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        if not cards:
            return
        rows = [card.__dict__ for card in cards]
        # One statement with the rows as parameters: compiled once and cached, where a
        # multi-row VALUES clause is compiled anew for every batch (about 10x the CPU).
        statement = self._insert(shown_cards).on_conflict_do_nothing()
        with self.engine.begin() as connection:
            connection.execute(statement, rows)

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        known = select(shown_cards.c.card_uuid, shown_cards.c.hook_instance).where(
            shown_cards.c.card_uuid.in_(sorted({item.card for item in items}))
        )
        with self.engine.connect() as connection:
            hook_instances = {row.card_uuid: row.hook_instance for row in connection.execute(known)}
        rows = []
        for item in items:
            reason = item.override_reason
            coding = reason.reason if reason else None
            rows.append(
                {
                    "item_key": _item_key(service_id, item),
                    "service_id": service_id,
                    "card_uuid": item.card,
                    "hook_instance": hook_instances.get(item.card),
                    "outcome": item.outcome,
                    "accepted_suggestions": orjson.dumps(
                        [s.id for s in item.accepted_suggestions]
                    ).decode(),
                    "override_code": coding.code if coding else None,
                    "override_system": coding.system if coding else None,
                    "override_display": coding.display if coding else None,
                    "override_comment": reason.user_comment if reason else None,
                    "outcome_at": _parse_time(item.outcome_timestamp),
                    "received_at": received_at,
                }
            )
        # RETURNING, not rowcount: psycopg reports -1 for INSERT .. ON CONFLICT.
        statement = (
            self._insert(feedback)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["item_key"])
            .returning(feedback.c.id)
        )
        with self.engine.begin() as connection:
            return len(connection.execute(statement).all())

    def shown_fingerprints(self, since: datetime) -> list[tuple[str, str, str, datetime]]:
        """(patient key, card key, fingerprint, shown at) of every card shown since ``since``,
        from every replica (the write-behind front's history, :mod:`cds.store.write_behind`)."""
        query = select(
            shown_cards.c.patient_key,
            shown_cards.c.rule_id,
            shown_cards.c.fingerprint,
            shown_cards.c.shown_at,
        ).where(
            shown_cards.c.patient_key.is_not(None),
            shown_cards.c.fingerprint.is_not(None),
            shown_cards.c.shown_at >= since,
            not_preview(shown_cards.c.hook_instance),
        )
        with self.engine.connect() as connection:
            return [(k, r, f, _as_utc(at)) for k, r, f, at in connection.execute(query)]

    def dismissed_fingerprints(
        self, outcome_since: datetime, received_since: datetime | None
    ) -> list[tuple[str, str, str, datetime]]:
        """(patient key, card key, fingerprint, outcome at) of every non-critical card
        overridden with a suppressing reason since ``outcome_since`` (feedback received since
        ``received_since``, when given)."""
        reasons = sorted(self.suppressing_reasons)
        if not reasons:
            return []
        query = (
            select(
                shown_cards.c.patient_key,
                shown_cards.c.rule_id,
                shown_cards.c.fingerprint,
                feedback.c.outcome_at,
            )
            .join(feedback, feedback.c.card_uuid == shown_cards.c.card_uuid)
            .where(
                shown_cards.c.patient_key.is_not(None),
                shown_cards.c.fingerprint.is_not(None),
                shown_cards.c.indicator != "critical",  # never suppressed by feedback
                feedback.c.outcome == "overridden",
                feedback.c.override_code.in_(reasons),
                feedback.c.outcome_at >= outcome_since,
            )
        )
        if received_since is not None:
            query = query.where(feedback.c.received_at >= received_since)
        with self.engine.connect() as connection:
            return [(k, r, f, _as_utc(at)) for k, r, f, at in connection.execute(query)]

    def card_history(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        if not keys:
            return {}
        shown = (
            select(
                shown_cards.c.rule_id, shown_cards.c.fingerprint, func.max(shown_cards.c.shown_at)
            )
            .where(
                shown_cards.c.patient_key == patient_key,
                shown_cards.c.rule_id.in_(sorted(keys)),
                shown_cards.c.shown_at >= shown_since,
                shown_cards.c.fingerprint.is_not(None),
                not_preview(shown_cards.c.hook_instance),
            )
            .group_by(shown_cards.c.rule_id, shown_cards.c.fingerprint)
        )
        out: dict[str, tuple[dict[str, datetime], set[str]]] = {}
        with self.engine.connect() as connection:
            for rule_id, fingerprint, when in connection.execute(shown):
                out.setdefault(rule_id, ({}, set()))[0][fingerprint] = _as_utc(when)
            if self.suppressing_reasons:
                dismissed = (
                    select(shown_cards.c.rule_id, shown_cards.c.fingerprint)
                    .join(feedback, feedback.c.card_uuid == shown_cards.c.card_uuid)
                    .where(
                        shown_cards.c.patient_key == patient_key,
                        shown_cards.c.rule_id.in_(sorted(keys)),
                        shown_cards.c.indicator != "critical",
                        shown_cards.c.fingerprint.is_not(None),
                        feedback.c.outcome == "overridden",
                        feedback.c.override_code.in_(sorted(self.suppressing_reasons)),
                        feedback.c.outcome_at >= feedback_since,
                    )
                    .distinct()
                )
                for rule_id, fingerprint in connection.execute(dismissed):
                    out.setdefault(rule_id, ({}, set()))[1].add(fingerprint)
        return {
            key: CardHistory(last_shown=times, suppressed=frozenset(prints))
            for key, (times, prints) in out.items()
        }

    def record_call(self, call: CallRecord, withheld: Sequence[WithheldCard]) -> None:
        self.record_calls([(call, withheld)])

    def record_calls(self, events: Sequence[tuple[CallRecord, Sequence[WithheldCard]]]) -> None:
        """Many calls in one transaction (the call store's writer batches them)."""
        if not events:
            return
        calls = [call.__dict__ for call, _ in events]
        held = [w.__dict__ for _, withheld in events for w in withheld]
        with self.engine.begin() as connection:
            connection.execute(self._insert(hook_calls).on_conflict_do_nothing(), calls)
            if held:
                connection.execute(withheld_cards.insert(), held)

    def remember_jti(self, token_key: str, expires_at: datetime, now: datetime) -> bool:
        """Record a client token id; False if it is already recorded and not yet expired.

        One atomic statement: insert, or take over an expired row with the same key.
        """
        insert = self._insert(jwt_replay).values(token_key=token_key, expires_at=expires_at)
        statement = insert.on_conflict_do_update(
            index_elements=["token_key"],
            set_={"expires_at": insert.excluded.expires_at},
            where=jwt_replay.c.expires_at < now,
        ).returning(jwt_replay.c.token_key)
        purge: Delete | None = None
        if time.monotonic() >= self._next_replay_purge:
            self._next_replay_purge = time.monotonic() + _REPLAY_PURGE_SECONDS
            purge = delete(jwt_replay).where(jwt_replay.c.expires_at < now)
        with self.engine.begin() as connection:
            recorded = connection.execute(statement).first() is not None
            if purge is not None:
                connection.execute(purge)
        return recorded

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def open_store(settings: Settings, suppressing_reasons: Collection[str] = ()) -> SqlStore:
    """Open the database; with ``CDS_MIGRATE_ON_START`` bring its schema up to date first."""
    engine = make_engine(settings)
    if settings.migrate_on_start and not _at_schema_head(engine):
        from cds.store.migrate import upgrade_database  # the migrations import this module's tables

        upgrade_database(engine)
    return SqlStore(engine, suppressing_reasons)


def _at_schema_head(engine: Engine) -> bool:
    """True when the database is already at ``SCHEMA_HEAD``: the usual start, which then needs
    neither Alembic (a tenth of a second to import) nor the migration lock."""
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:  # no such table yet: a new database
        return False
    return [row[0] for row in versions] == [SCHEMA_HEAD]
