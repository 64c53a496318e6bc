"""Typed SQLAlchemy models of the console's people: accounts, their sessions and API tokens,
and the record of every login attempt (which the login throttle also counts).

Secrets are never stored: a password only as its argon2 hash, a session id and an API token
only as the SHA-256 of their 32 random bytes (client/passwords.py says why that is enough)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from dsp_integration.database.models import Base

NAME = String(64)
DIGEST = String(64)
ADDRESS = String(64)


class Account(Base):
    """A person who may use the console and the API, with a role (client.actors.Role).
    Accounts are disabled, never deleted: the action log keeps naming them."""

    __tablename__ = "console_account"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # A password the CLI or an admin generated (seen in a terminal or a chat): the person
    # must choose their own at their first login before anything else.
    password_change_required: Mapped[bool] = mapped_column(Boolean, server_default="false")
    disabled: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsoleSession(Base):
    """A browser's login. `account_id` NULL: a bootstrap session opened with CONSOLE_TOKEN,
    valid only while no enabled admin account exists. Checked at every request, so ending
    the row (logout, a disabled account, a changed password) ends the session at once."""

    __tablename__ = "console_session"

    id_hash: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("console_account.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str | None] = mapped_column(ADDRESS)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ApiToken(Base):
    """A person's API token (`Authorization: Bearer ...`): it acts as its account, with the
    account's role at the time of each request. `prefix` names it in lists."""

    __tablename__ = "console_api_token"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("console_account.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(DIGEST, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginEvent(Base):
    """Every login attempt: who (the name as typed), when, from where, and its outcome
    (`ok`, `failed`, `throttled`, `disabled`, `retired-token`, or `confirmed`: a password
    typed again to change it)."""

    __tablename__ = "console_login_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    name: Mapped[str] = mapped_column(NAME)
    account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("console_account.id", ondelete="SET NULL")
    )
    address: Mapped[str | None] = mapped_column(ADDRESS)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_console_login_event_name_at", "name", "at"),
        Index("ix_console_login_event_address_at", "address", "at"),
    )
