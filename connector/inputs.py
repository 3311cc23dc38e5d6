"""Validated input: request bodies as strict pydantic models; unknown fields and wrong types are refused.

``parse(model, raw)`` turns the raw bytes into a model or raises
``MalformedRequest`` (not JSON) / ``ValidationFailed`` (one entry per field).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from connector import errors
from connector.timezones import is_iana_zone
from mappings.times import EARLIEST, LATEST, InstantOutOfRange, NaiveDatetimeError, parse_instant
from webhooks import signing

EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"
# Cal.com's ids are 32-bit integers (Prisma Int).
MAX_CALCOM_ID = 2_147_483_647
# Matched with fullmatch: "$" would also accept a trailing newline, which then breaks the Location header.
EXTERNAL_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# ASCII digits only: str.isdigit() and "\d" also take "²" and "٣", which int() refuses or reads.
_WHOLE_NUMBER = re.compile(r"[0-9]+")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and unpaired surrogates
_UNTYPED = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")  # those and control characters


def whole_number(text: str | None, *, high: int, low: int = 1) -> int | None:
    """``text`` as a whole number from ``low`` to ``high``, or None when it is anything else.

    Digits beyond what ``high`` needs are refused before ``int`` sees them: Python will not
    convert a string of more than 4,300 digits, and nothing here needs one.
    """
    if text is None or not _WHOLE_NUMBER.fullmatch(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(high)):
        return None
    value = int(digits)
    return value if low <= value <= high else None


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL and SQLite can: refuse it, so both engines answer alike.
    # A lone surrogate (JSON lines read by json.loads) cannot be stored or answered as UTF-8.
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL (\\u0000) or unpaired surrogate characters")
    return value


def _bad_characters(value: str) -> bool:
    """Control characters or lone surrogates: nothing a person types, nothing a store can hold."""
    return _UNTYPED.search(value) is not None


def _instant(value: Any) -> datetime:
    """An aware instant, in whole seconds: Cal.com is sent whole seconds, so a fraction could
    never match what it books (and converge would reschedule forever)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string with a UTC offset")
    try:
        instant = parse_instant(value).replace(microsecond=0)
    except InstantOutOfRange:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}") from None
    except NaiveDatetimeError:
        raise ValueError(
            "must include a UTC offset, e.g. 2026-03-17T15:00:00+01:00 or 2026-03-17T14:00:00Z"
        ) from None
    except ValueError:
        raise ValueError("is not an ISO 8601 date-time, e.g. 2026-03-17T15:00:00+01:00") from None
    if not EARLIEST <= instant <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return instant


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > 320 or not EMAIL_PATTERN.match(value):
        raise ValueError("is not a valid email address")
    return value


def _time_zone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not is_iana_zone(value):
        raise ValueError(f"{value!r} is not an IANA time zone such as America/New_York")
    return value


Instant = Annotated[datetime, BeforeValidator(_instant)]
Email = Annotated[str, BeforeValidator(_email)]
TimeZone = Annotated[str, BeforeValidator(_time_zone)]
# Every free-text field of a request body ends with STORABLE: what no engine can store is refused
# in all of them. It goes after the constraints (before them, pydantic stops applying them).
STORABLE = AfterValidator(_storable)
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40), STORABLE]
MetadataValue = Annotated[str, StringConstraints(max_length=500), STORABLE]


# Free-text fields, named by what they hold; "required" ones also refuse blanks.
RequiredTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
                          STORABLE]
RequiredName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                         STORABLE]
ShortText = Annotated[str, StringConstraints(max_length=64), STORABLE]
NameText = Annotated[str, StringConstraints(max_length=200), STORABLE]
LabelText = Annotated[str, StringConstraints(max_length=100), STORABLE]
LongText = Annotated[str, StringConstraints(max_length=10_000), STORABLE]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


REMINDER_CHANNELS = ("sms", "email", "voice", "push")
MAX_REMINDER_LEAD_MINUTES = 10_080  # a week: the reminder sweep looks that far ahead
MAX_REMINDERS = 10


class ReminderInput(StrictBody):
    """One reminder of an appointment: the CRM sends it on ``channel`` when calsync says it is due
    (``appointment.reminder_due``, ``minutes_before`` the start)."""

    channel: Literal["sms", "email", "voice", "push"]
    minutes_before: Annotated[int, Field(ge=1, le=MAX_REMINDER_LEAD_MINUTES)]
    template: Annotated[str, StringConstraints(max_length=500), STORABLE] | None = None


Reminders = Annotated[list[ReminderInput], Field(max_length=MAX_REMINDERS)]


class AppointmentInput(StrictBody):
    """The appointment fields a CRM writes (DESIGN §6)."""

    title: RequiredTitle
    attendee_name: RequiredName
    attendee_email: Email
    attendee_time_zone: TimeZone | None = None
    attendee_phone: Annotated[str, StringConstraints(pattern=PHONE_PATTERN)] | None = Field(
        default=None, description="E.164, e.g. +12125550123")
    to_number: ShortText | None = None
    from_number: ShortText | None = None
    call_type: ShortText | None = None
    business_name: NameText | None = None
    label: LabelText | None = None
    description: LongText | None = None
    event_type_id: Annotated[int, Field(ge=1, le=MAX_CALCOM_ID)] | None = None
    start_time: Instant
    duration_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None
    guests: Annotated[list[Email], Field(max_length=30)] = Field(default_factory=list)
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=50)] = Field(
        default_factory=dict)
    reminders: Reminders | None = Field(
        default=None, description="the appointment's reminders; absent or null: the account's defaults")


class CancelInput(StrictBody):
    """``POST …/cancel``: the reason goes to Cal.com (a default when absent)."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), STORABLE] | None = None
    notify_attendee: bool = True


class ConfirmInput(StrictBody):
    """``POST …/confirm``: the host accepts a booking awaiting confirmation (no fields)."""


class DeclineInput(StrictBody):
    """``POST …/decline``: the host refuses it; the reason goes to Cal.com and the attendee."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), STORABLE] | None = None


class ReassignInput(StrictBody):
    """``POST …/reassign``: another host of a round-robin or managed event type; Cal.com picks
    one when ``host`` (a Cal.com user id) is absent."""

    host: Annotated[int, Field(ge=1, le=MAX_CALCOM_ID)] | None = None


class ReconcileInput(StrictBody):
    """``POST /v1/reconcile``: an incremental pass unless ``full``."""

    full: bool = False


class AttendanceInput(StrictBody):
    """``POST …/attendance``: the primary attendee's attendance (DESIGN §10)."""

    attendance: Literal["attended", "no_show"]


Model = TypeVar("Model", bound=BaseModel)

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be an array",
    "dict_type": "must be an object",
    "int_from_float": "must be an integer",
}


def field_errors(exc: ValidationError) -> list[errors.FieldError]:
    result = []
    for item in exc.errors(include_url=False):
        location = [str(part) for part in item["loc"]]
        # Dict-key errors end with "[key]": keep the path readable.
        if location and location[-1] == "[key]":
            location = location[:-1]
        field = ".".join(location) or "body"
        message = _MESSAGES.get(item["type"])
        if message is None:
            message = str(item["msg"])
            message = message.removeprefix("Value error, ")
            message = message[:1].lower() + message[1:] if message else "is invalid"
        result.append(errors.FieldError(field, message))
    return result


def parse(model: type[Model], raw: bytes) -> Model:
    """A model from a raw JSON body; bad JSON → 400, bad fields → 422 naming each field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        kinds = {item["type"] for item in exc.errors()}
        if "json_invalid" in kinds:
            raise errors.MalformedRequest("The request body is not valid JSON.") from None
        if "model_type" in kinds or any(not item["loc"] for item in exc.errors()):
            raise errors.MalformedRequest("The request body must be a JSON object.") from None
        raise errors.ValidationFailed(field_errors(exc)) from None


def load_json(raw: bytes | str) -> Any:
    """JSON read as the request models read it (pydantic's parser): UTF-8 only, no unpaired
    surrogates, nesting bounded (json.loads would raise RecursionError). Raises ValueError."""
    return pydantic_core.from_json(raw)


def parse_object(raw: bytes) -> dict[str, Any]:
    """A raw body as a JSON object, for bodies read field by field (a merge patch)."""
    try:
        body = load_json(raw)
    except ValueError:
        raise errors.MalformedRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.MalformedRequest("The request body must be a JSON object.")
    return body


def check_external_id(external_id: str) -> str:
    if not EXTERNAL_ID_PATTERN.fullmatch(external_id):
        raise errors.ValidationFailed.one(
            "external_id", "must be 1–128 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'")
    return external_id


def http_url_problem(value: str) -> str | None:
    """What keeps ``value`` from being an absolute http(s) URL calsync can call, or None."""
    if len(value) > 2000 or _bad_characters(value) or " " in value:
        return "must be an absolute http:// or https:// URL without spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number or out of range
    except ValueError:
        return "must be an absolute http:// or https:// URL with a valid port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL, e.g. https://crm.example.com/hooks"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    return None


def _http_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    problem = http_url_problem(value)
    if problem:
        raise ValueError(problem)
    return value.rstrip("/")


def _signing_secret(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    wrong = "must not contain control characters" if _bad_characters(value) else signing.check_secret(value)
    if wrong:
        raise ValueError(wrong)
    return value


HttpUrl = Annotated[str, BeforeValidator(_http_url)]
SigningSecret = Annotated[str, BeforeValidator(_signing_secret)]


class SettingsInput(StrictBody):
    """``PUT /v1/settings``: a field left out stays as it is; ``null`` clears an optional one."""

    calcom_api_key: Annotated[str, StringConstraints(pattern=r"^cal_[A-Za-z0-9_-]{1,200}$")] | None = Field(
        default=None, description="Cal.com API key (cal_…); checked with GET /v2/me before it is saved; "
                                  "never shown again")
    default_event_type_id: Annotated[int, Field(ge=1, le=MAX_CALCOM_ID)] | None = None
    time_zone: TimeZone | None = None
    duration_override_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None
    callback_url: HttpUrl | None = None
    callback_secret: SigningSecret | None = Field(
        default=None, description="whsec_… secret that signs events to the CRM; never shown again")
    public_url: HttpUrl | None = None
    default_reminders: Reminders | None = Field(
        default=None, description="the reminders of an appointment that names none")


# --- query parameters ---------------------------------------------------------------

PER_PAGE_CHOICES = (10, 25, 50, 100)
DEFAULT_PER_PAGE = 25
MAX_PAGE = 100_000


def unknown_parameters(params: Mapping[str, str], known: Iterable[str]) -> list[errors.FieldError]:
    """One error per query parameter the operation does not take: a typo never filters nothing."""
    allowed = set(known)
    return [errors.FieldError(name, "is not a known query parameter")
            for name in params if name not in allowed]


def paging(params: Mapping[str, str]) -> tuple[int, int, list[errors.FieldError]]:
    """``page`` (1 to MAX_PAGE) and ``per_page`` (one of PER_PAGE_CHOICES), with what is wrong."""
    problems = []
    page = whole_number(params.get("page", "1"), high=MAX_PAGE)
    if page is None:
        problems.append(errors.FieldError("page", f"must be a whole number from 1 to {MAX_PAGE}"))
    per_page = whole_number(params.get("per_page", str(DEFAULT_PER_PAGE)), high=max(PER_PAGE_CHOICES))
    if per_page not in PER_PAGE_CHOICES:
        problems.append(errors.FieldError(
            "per_page", f"must be one of {', '.join(map(str, PER_PAGE_CHOICES))}"))
    return page or 1, per_page or DEFAULT_PER_PAGE, problems
