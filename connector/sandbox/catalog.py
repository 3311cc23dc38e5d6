"""The sandbox's host and event types, shaped like the fixtures' scenario."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Host:
    id: int = 4201
    name: str = "Dana Host"
    email: str = "dana.host@example.com"
    username: str = "dana-host"
    time_zone: str = "Europe/Berlin"

    def as_booking_host(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email,
                "username": self.username, "timeZone": self.time_zone}


@dataclass(frozen=True)
class SandboxEventType:
    id: int
    slug: str
    title: str
    length: int
    locations: tuple[dict[str, Any], ...] = ()
    length_options: tuple[int, ...] = ()
    requires_confirmation: bool = False
    description: str = ""
    minimum_notice_minutes: int = 0
    hidden: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    seats: int | None = None  # seats per time slot: a seated (group) event type


    def allows_length(self, minutes: int) -> bool:
        return minutes == self.length or minutes in self.length_options

    def output(self, host: Host) -> dict[str, Any]:
        """``EventTypeOutput_2024_06_14`` (REFERENCE §5.9)."""
        body: dict[str, Any] = {
            "id": self.id,
            "lengthInMinutes": self.length,
        }
        if self.length_options:
            body["lengthInMinutesOptions"] = list(self.length_options)
        body.update({
            "title": self.title,
            "slug": self.slug,
            "description": self.description,
            "locations": [dict(item) for item in self.locations],
            "bookingFields": [],
            "disableGuests": False,
            "slotInterval": None,
            "minimumBookingNotice": self.minimum_notice_minutes,
            "beforeEventBuffer": 0,
            "afterEventBuffer": 0,
            "recurrence": None,
            "metadata": dict(self.metadata),
            "price": 0,
            "currency": "usd",
            "lockTimeZoneToggleOnBookingPage": False,
            # The spec types this legacy field as an object; the count is in `seats` below.
            "seatsPerTimeSlot": None,
            "forwardParamsSuccessRedirect": None,
            "successRedirectUrl": None,
            "isInstantEvent": False,
            "seatsShowAvailabilityCount": None,
            "scheduleId": None,
            "confirmationPolicy": (
                {"type": "always", "blockUnconfirmedBookingsInBooker": False}
                if self.requires_confirmation else {"disabled": True}
            ),
            "hidden": self.hidden,
            "bookingRequiresAuthentication": False,
            "ownerId": host.id,
            "users": [],
        })
        # Cal.com's source writes {"disabled": true} for an unseated type, but the spec types
        # `seats` as a full Seats_2024_06_14; both agree it is optional, so unseated types omit it.
        if self.seats is not None:
            body["seats"] = {"seatsPerTimeSlot": self.seats, "showAttendeeInfo": False,
                             "showAvailabilityCount": True}
        return body


CAL_VIDEO = {"type": "integration", "integration": "cal-video"}


def default_event_types() -> tuple[SandboxEventType, ...]:
    return (
        SandboxEventType(123456, "intro-call", "Intro Call", 30, (CAL_VIDEO,)),
        SandboxEventType(123457, "discovery-call", "Discovery Call", 30, (CAL_VIDEO,),
                         length_options=(15, 30, 60)),
        SandboxEventType(123789, "demo-request", "Product Demo", 45,
                         ({"type": "link", "link": "https://meet.example.com/dana-demo",
                           "public": True},),
                         requires_confirmation=True),
        SandboxEventType(123999, "phone-screen", "Phone Screen", 15, ()),
        SandboxEventType(124000, "group-workshop", "Group Workshop", 60, (CAL_VIDEO,), seats=3),
    )
