"""User accounts: registration, reads, owner-or-admin changes, the start-up admin."""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from app.core.clock import utc_now
from app.core.exceptions import (
    Conflict,
    DuplicateKey,
    Forbidden,
    NotFound,
    PreconditionFailed,
    RecordNotFound,
    StartupRefused,
    StoreUnavailable,
    UnprocessableContent,
    VersionMismatch,
)
from app.core.logging import get_logger
from app.core.security import PasswordHasher
from app.schemas.users import public_view
from app.services.cache import TTLCache
from app.services.events import Publish
from app.services.login_throttle import LoginThrottle
from app.stores.invalidation import Invalidate
from app.stores.records import CollectionSpec, Filter, Record, Repository, UniqueField

log = get_logger(__name__)

Role = Literal["user", "admin"]
USERS = "users"
USER_SORT_FIELDS = ("id", "name", "created_at")
_USERS_SPEC = CollectionSpec(
    name=USERS,
    unique=(UniqueField("email", case_insensitive=True),),
    sortable=USER_SORT_FIELDS,
)


@dataclass(frozen=True, slots=True)
class User:
    """A user account as the services see it (the password hash never leaves the services)."""

    id: int
    version: int
    email: str
    name: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    password_hash: str
    # Random; replaced whenever tokens issued so far must stop working (see AuthService).
    credential_stamp: str

    @classmethod
    def from_record(cls, record: Record) -> User:
        """Build a `User` from a stored record."""
        return cls(
            id=record["id"],
            version=record["version"],
            email=record["email"],
            name=record["name"],
            role=record["role"],
            is_active=record["is_active"],
            created_at=datetime.fromisoformat(record["created_at"]),
            updated_at=datetime.fromisoformat(record["updated_at"]),
            password_hash=record["password_hash"],
            # Records written before stamps existed: the hash changes with the password too.
            credential_stamp=record.get("credential_stamp") or record["password_hash"],
        )

    @property
    def is_admin(self) -> bool:
        """Admins may change any account."""
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class UserPage:
    """One page of users and the number of all matches."""

    items: tuple[User, ...]  # a tuple: pages are cached and shared, so they must not change
    total: int


def normalise_email(email: str) -> str:
    """The form emails are compared in: NFKC (fullwidth and compatibility characters folded
    to their plain forms), then casefolded."""
    return unicodedata.normalize("NFKC", email).strip().casefold()


def new_credential_stamp() -> str:
    """A fresh credential stamp: every token bound to the previous one stops working."""
    return secrets.token_urlsafe(16)


def _user_key(user_id: int) -> str:
    return f"users:{user_id}"


def _list_key(**query: Any) -> str:
    return "users:list:" + "|".join(f"{name}={query[name]!r}" for name in sorted(query))


class UserService:
    """The rules for user accounts, over any `Repository`.

    Reads (`get`, `list`) go through the cache; every write invalidates what it could have
    changed before it returns (on every replica, with Redis), so a client never reads its own
    write stale.
    """

    def __init__(
        self,
        repository: Repository,
        hasher: PasswordHasher,
        cache: TTLCache,
        *,
        invalidate: Invalidate,
        publish: Publish | None = None,
        throttle: LoginThrottle | None = None,
        admin_email: str | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._repo = repository
        self._hasher = hasher
        # `current_password` is a password check like a login: the same throttle counts it.
        self._throttle = throttle
        # The configured admin's email is the admin's alone: were the store to lose its data,
        # anyone registering it first would otherwise keep the next start from having an admin.
        self._admin_email = normalise_email(admin_email) if admin_email else None
        self.cache = cache
        self._invalidations = invalidate
        self._publish = publish
        self._now = now
        repository.declare(_USERS_SPEC)

    async def _announce(self, topic: str, user: User | None, user_id: int) -> None:
        # The public view only (no email, no role): events reach anonymous SSE clients and the
        # audit log; an admin reads the rest with a GET.
        if self._publish is not None:
            data = public_view(user) if user is not None else {"id": user_id}
            try:
                await self._publish(topic, data)
            except StoreUnavailable:
                # The change is made and acknowledged; only its announcement is lost.
                log.warning("event_not_published", topic=topic, user_id=user_id)

    async def _invalidate(self, user_id: int | None) -> None:
        # Before the write is acknowledged: no replica may serve the old version afterwards.
        keys = [_user_key(user_id)] if user_id is not None else []
        await self._invalidations(keys, ["users:list:*"])

    def _timestamp(self) -> str:
        return self._now().isoformat()

    async def create(
        self,
        *,
        email: str,
        name: str,
        password: str,
        role: Role = "user",
        request_stamp: str | None = None,
    ) -> User:
        """Register an account; `Conflict` if the email is taken in any letter case.

        `request_stamp` (from an `Idempotency-Key`) is stored in the record, in the same write:
        a retry of a request whose answer was lost finds the account it created
        (`created_by_request`).
        """
        if role != "admin" and self._is_admin_email(email):
            # Answered as a taken email is: it says no more than that the address is in use.
            raise Conflict(f"The email {email} is already registered.")
        password_hash = await self._hasher.hash(password)
        now = self._timestamp()
        data = {
            "email": email,
            "name": name,
            "role": role,
            "is_active": True,
            "password_hash": password_hash,
            "credential_stamp": new_credential_stamp(),
            "created_at": now,
            "updated_at": now,
        }
        if request_stamp is not None:
            data["request_stamp"] = request_stamp
        try:
            record = await self._repo.create(USERS, data)
        except DuplicateKey:
            raise Conflict(f"The email {email} is already registered.") from None
        user = User.from_record(record)
        await self._invalidate(None)
        log.info("user_created", user_id=user.id, role=role)
        await self._announce("user.created", user, user.id)
        return user

    async def created_by_request(self, email: str, request_stamp: str) -> User | None:
        """The account registered under `email` by the request stamped `request_stamp`, or
        None: how a retry learns that its first attempt was applied though its answer was lost
        (a 503 or a timeout after the store had written it)."""
        record = await self._repo.find_unique(USERS, "email", email)
        stamp = record.get("request_stamp") if record is not None else None
        if record is None or not isinstance(stamp, str):
            return None
        if not hmac.compare_digest(stamp, request_stamp):
            return None
        user = User.from_record(record)
        log.info("idempotent_write_found", user_id=user.id)
        # The first attempt failed before it could do these: lists and listeners learn now.
        await self._invalidate(None)
        await self._announce("user.created", user, user.id)
        return user

    async def get(self, user_id: int) -> User:
        """The user with `user_id`, or `NotFound` (through the cache)."""

        async def load() -> User:
            record = await self._repo.get(USERS, user_id)
            if record is None:
                raise NotFound(f"User {user_id} does not exist.")
            return User.from_record(record)

        user: User = await self.cache.get_or_load(_user_key(user_id), load)
        return user

    def cached_copy(self, user_id: int) -> tuple[User, float] | None:
        """This replica's last copy of the user and its age in seconds, even past the cache's
        TTL (within its stale window), or None: the fallback while the store fails."""
        found = self.cache.get_stale(_user_key(user_id))
        return None if found is None else (cast(User, found[0]), found[1])

    def cached_page(
        self,
        *,
        skip: int = 0,
        limit: int = 20,
        sort: str = "id",
        name_contains: str | None = None,
        email: str | None = None,
        is_active: bool | None = None,
    ) -> tuple[UserPage, float] | None:
        """This replica's last copy of a page and its age (see `cached_copy`), or None."""
        key = _list_key(
            skip=skip,
            limit=limit,
            sort=sort,
            name_contains=name_contains,
            email=email,
            is_active=is_active,
        )
        found = self.cache.get_stale(key)
        return None if found is None else (cast(UserPage, found[0]), found[1])

    async def find_active(self, user_id: int) -> User | None:
        """The user with `user_id` if it exists and is active, else None."""
        record = await self._repo.get(USERS, user_id)
        if record is None or not record["is_active"]:
            return None
        return User.from_record(record)

    async def find_by_email(self, email: str) -> User | None:
        """The user with this email (any letter case), or None."""
        record = await self._repo.find_unique(
            USERS, "email", unicodedata.normalize("NFKC", email).strip()
        )
        return User.from_record(record) if record is not None else None

    async def list(
        self,
        *,
        skip: int = 0,
        limit: int = 20,
        sort: str = "id",
        name_contains: str | None = None,
        email: str | None = None,
        is_active: bool | None = None,
    ) -> UserPage:
        """A page of users matching every given filter (through the cache)."""
        key = _list_key(
            skip=skip,
            limit=limit,
            sort=sort,
            name_contains=name_contains,
            email=email,
            is_active=is_active,
        )

        async def load() -> UserPage:
            return await self._load_page(skip, limit, sort, name_contains, email, is_active)

        page: UserPage = await self.cache.get_or_load(key, load)
        return page

    async def _load_page(
        self,
        skip: int,
        limit: int,
        sort: str,
        name_contains: str | None,
        email: str | None,
        is_active: bool | None,
    ) -> UserPage:
        filters: list[Filter] = []
        if name_contains:
            filters.append(Filter("name", "icontains", name_contains))
        if email is not None:
            filters.append(Filter("email", "ieq", email))
        if is_active is not None:
            filters.append(Filter("is_active", "eq", is_active))
        page = await self._repo.list(USERS, filters=filters, sort=sort, skip=skip, limit=limit)
        return UserPage(items=tuple(User.from_record(r) for r in page.items), total=page.total)

    async def replace(
        self,
        user_id: int,
        *,
        email: str,
        name: str,
        is_active: bool,
        actor: User,
        expected_versions: Collection[int] | None = None,
    ) -> User:
        """Replace the editable fields of an account (owner or admin)."""
        return await self.update(
            user_id,
            {"email": email, "name": name, "is_active": is_active},
            actor=actor,
            expected_versions=expected_versions,
        )

    async def update(
        self,
        user_id: int,
        changes: Mapping[str, Any],
        *,
        actor: User,
        expected_versions: Collection[int] | None = None,
        current_password: str | None = None,
        client_address: str = "",
    ) -> User:
        """Change only the given fields (`email`, `name`, `is_active`, `password`).

        Changing one's own password needs `current_password`: a stolen token alone must not be
        enough to take the account over. A new password or a change of `is_active` replaces
        the credential stamp, so every token issued before stops working.
        """
        self._authorize(actor, user_id)
        fields = dict(changes)
        if self._is_admin_email(fields.get("email")) and not (await self.get(user_id)).is_admin:
            raise Conflict(f"The email {fields['email']} is already registered.")
        if "password" in fields:
            if actor.id == user_id:
                await self._check_current_password(actor, current_password, client_address)
            fields["password_hash"] = await self._hasher.hash(fields.pop("password"))
            fields["credential_stamp"] = new_credential_stamp()
        if "is_active" in fields:
            current = await self.get(user_id)
            if current.is_active != fields["is_active"]:
                fields["credential_stamp"] = new_credential_stamp()
        if not fields:
            # Nothing to change: answer with the current state, preconditions still apply.
            current = await self.get(user_id)
            if expected_versions is not None and current.version not in expected_versions:
                raise PreconditionFailed(_stale(user_id))
            return current
        fields["updated_at"] = self._timestamp()
        try:
            record = await self._repo.update(
                USERS, user_id, fields, expected_versions=expected_versions
            )
        except RecordNotFound:
            raise NotFound(f"User {user_id} does not exist.") from None
        except VersionMismatch:
            raise PreconditionFailed(_stale(user_id)) from None
        except DuplicateKey:
            raise Conflict(f"The email {fields.get('email')} is already registered.") from None
        await self._invalidate(user_id)
        log.info("user_updated", user_id=user_id, fields=sorted(set(changes)))
        user = User.from_record(record)
        await self._announce("user.updated", user, user_id)
        return user

    async def _check_current_password(
        self, user: User, current_password: str | None, client_address: str
    ) -> None:
        if current_password is None:
            raise UnprocessableContent("Changing your own password needs current_password as well.")
        account = normalise_email(user.email)
        if self._throttle is not None:
            await self._throttle.check(client_address, account)
        if not await self._hasher.verify(current_password, user.password_hash):
            if self._throttle is not None:
                await self._throttle.failed(client_address, account)
            raise Forbidden("current_password is not this account's password.")
        if self._throttle is not None:
            await self._throttle.succeeded(client_address, account)

    async def rotate_credentials(self, user_id: int) -> None:
        """Replace the user's credential stamp: every token issued so far stops working."""
        await self._repo.update(USERS, user_id, {"credential_stamp": new_credential_stamp()})
        await self._invalidate(user_id)

    async def delete(
        self, user_id: int, *, actor: User, expected_versions: Collection[int] | None = None
    ) -> None:
        """Delete an account (owner or admin). Its id is never given out again."""
        self._authorize(actor, user_id)
        try:
            await self._repo.delete(USERS, user_id, expected_versions=expected_versions)
        except RecordNotFound:
            raise NotFound(f"User {user_id} does not exist.") from None
        except VersionMismatch:
            raise PreconditionFailed(_stale(user_id)) from None
        await self._invalidate(user_id)
        log.info("user_deleted", user_id=user_id, by=actor.id)
        await self._announce("user.deleted", None, user_id)

    def _is_admin_email(self, email: object) -> bool:
        return (
            self._admin_email is not None
            and isinstance(email, str)
            and normalise_email(email) == self._admin_email
        )

    async def ensure_admin(
        self,
        *,
        email: str,
        password: str,
        reset_password: bool = False,
        forbidden_password: str | None = None,
    ) -> User:
        """Create the configured admin account unless an account with that email exists.

        An existing admin keeps its password, unless `reset_password` (the documented way to
        rotate it: set the new one in the settings and restart once with the reset on). With
        `forbidden_password` (production: the development one), an admin whose stored password
        still verifies against it stops start-up.
        """
        existing = await self.find_by_email(email)
        if existing is not None:
            if not existing.is_admin:
                # Registered by someone while the admin did not exist (a store that lost its
                # data): running on would leave the service without an admin.
                raise StartupRefused(
                    f"APP_ADMIN_EMAIL: the account with this email (user {existing.id}) is not "
                    "an admin; delete or rename that account, or choose another APP_ADMIN_EMAIL"
                )
            if reset_password:
                await self._repo.update(
                    USERS,
                    existing.id,
                    {
                        "password_hash": await self._hasher.hash(password),
                        "credential_stamp": new_credential_stamp(),
                        "updated_at": self._timestamp(),
                    },
                )
                await self._invalidate(existing.id)
                log.warning("admin_password_reset", user_id=existing.id)
                return await self.get(existing.id)
            if forbidden_password is not None and await self._hasher.verify(
                forbidden_password, existing.password_hash
            ):
                raise StartupRefused(
                    "the stored admin account still has the development password; set "
                    "APP_ADMIN_RESET_PASSWORD=true once to replace it with APP_ADMIN_PASSWORD"
                )
            return existing
        try:
            return await self.create(
                email=email, name="Administrator", password=password, role="admin"
            )
        except Conflict:  # created concurrently by another start-up path
            user = await self.find_by_email(email)
            assert user is not None
            return user

    @staticmethod
    def _authorize(actor: User, user_id: int) -> None:
        if not actor.is_admin and actor.id != user_id:
            raise Forbidden("Only the account's owner or an admin may change it.")


def _stale(user_id: int) -> str:
    return f"User {user_id} has changed since the given ETag; fetch it again."
