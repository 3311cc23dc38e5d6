"""Validated input: request bodies as strict pydantic models; unknown fields and wrong types are refused.

``parse(model, raw)`` turns the raw bytes into a model or raises
``MalformedRequest`` (not JSON) / ``ValidationFailed`` (one entry per field).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from connector import errors
from connector.timezones import is_iana_zone
from mappings.times import NaiveDatetimeError, parse_instant
from webhooks import signing

EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"
# Instants calsync accepts: far enough out for any meeting, clear of datetime's overflow edges.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)
# Cal.com's ids are 32-bit integers (Prisma Int).
MAX_CALCOM_ID = 2_147_483_647
EXTERNAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _instant(value: Any) -> datetime:
    """An aware instant, in whole seconds: Cal.com is sent whole seconds, so a fraction could
    never match what it books (and converge would reschedule forever)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string with a UTC offset")
    try:
        instant = parse_instant(value).replace(microsecond=0)
    except OverflowError:
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
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AppointmentInput(StrictBody):
    """The appointment fields a CRM writes (DESIGN §6)."""

    title: Annotated[Text, StringConstraints(max_length=500)]
    attendee_name: Annotated[Text, StringConstraints(max_length=200)]
    attendee_email: Email
    attendee_time_zone: TimeZone | None = None
    attendee_phone: Annotated[str, StringConstraints(pattern=PHONE_PATTERN)] | None = Field(
        default=None, description="E.164, e.g. +12125550123")
    to_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    from_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    call_type: Annotated[str, StringConstraints(max_length=64)] | None = None
    business_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    label: Annotated[str, StringConstraints(max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    event_type_id: Annotated[int, Field(ge=1, le=MAX_CALCOM_ID)] | None = None
    start_time: Instant
    duration_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None
    guests: Annotated[list[Email], Field(max_length=30)] = Field(default_factory=list)
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=50)] = Field(
        default_factory=dict)


class CancelInput(StrictBody):
    """``POST …/cancel``: the reason goes to Cal.com (a default when absent)."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    notify_attendee: bool = True


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


def parse_object(raw: bytes) -> dict[str, Any]:
    """A raw body as a JSON object, for bodies read field by field (a merge patch)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise errors.MalformedRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.MalformedRequest("The request body must be a JSON object.")
    return body


def check_external_id(external_id: str) -> str:
    if not EXTERNAL_ID_PATTERN.match(external_id):
        raise errors.ValidationFailed.one(
            "external_id", "must be 1–128 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'")
    return external_id


def _http_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2000:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def _signing_secret(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    wrong = signing.check_secret(value)
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


# --- query parameters ---------------------------------------------------------------

PER_PAGE_CHOICES = (10, 25, 50, 100)
DEFAULT_PER_PAGE = 25
MAX_PAGE = 100_000


def unknown_parameters(params: Mapping[str, str], known: Iterable[str]) -> list[errors.FieldError]:
    """One error per query parameter the operation does not take: a typo never filters nothing."""
    allowed = set(known)
    return [errors.FieldError(name, "is not a known query parameter")
            for name in params if name not in allowed]


def check_parameters(params: Mapping[str, str], known: Iterable[str]) -> None:
    problems = unknown_parameters(params, known)
    if problems:
        raise errors.ValidationFailed(problems)


def paging(params: Mapping[str, str]) -> tuple[int, int, list[errors.FieldError]]:
    """``page`` (1 to MAX_PAGE) and ``per_page`` (one of PER_PAGE_CHOICES), with what is wrong."""
    problems = []
    page = _whole(params.get("page", "1"))
    if page is None or page > MAX_PAGE:
        problems.append(errors.FieldError("page", f"must be a whole number from 1 to {MAX_PAGE}"))
    per_page = _whole(params.get("per_page", str(DEFAULT_PER_PAGE)))
    if per_page not in PER_PAGE_CHOICES:
        problems.append(errors.FieldError(
            "per_page", f"must be one of {', '.join(map(str, PER_PAGE_CHOICES))}"))
    return page or 1, per_page or DEFAULT_PER_PAGE, problems


def _whole(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 9 and int(text) >= 1 else None
