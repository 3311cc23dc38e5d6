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
    team_id: int | None = None  # a team's event type (listed under the team, not the user)
    scheduling_type: str | None = None  # roundRobin, collective, managed (v2's camelCase)
    # A recurring event type: Recurrence_2024_06_14 ({frequency, interval, occurrences}).
    recurrence: dict[str, Any] | None = None


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
            "recurrence": dict(self.recurrence) if self.recurrence else None,
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
        if self.team_id is not None:
            # TeamEventTypeOutput_2024_06_14; hosts as Cal.com's source writes them (REFERENCE
            # §5.9), where the spec says strings.
            body.update(teamId=self.team_id, schedulingType=self.scheduling_type, ownerId=None,
                        parentEventTypeId=None, assignAllTeamMembers=False,
                        rescheduleWithSameRoundRobinHost=False,
                        hosts=[{"userId": member.id, "mandatory": False, "priority": 2,
                                "name": member.name, "username": member.username, "avatarUrl": None}
                               for member in team_members(host)],
                        team={"id": TEAM["id"], "slug": TEAM["slug"], "name": TEAM["name"],
                              "bannerUrl": None, "logoUrl": None, "weekStart": "Monday",
                              "brandColor": None, "darkBrandColor": None, "theme": None})
        return body


CAL_VIDEO = {"type": "integration", "integration": "cal-video"}
# Every sandbox user is in one team with two colleagues, and the team has a round-robin event type.
TEAM_ID = 7001
TEAM: dict[str, Any] = {"id": TEAM_ID, "slug": "sandbox-team", "name": "Sandbox Team"}
COLLEAGUES = (
    Host(id=4301, name="Riley Colleague", email="riley.colleague@example.com", username="riley-colleague"),
    Host(id=4302, name="Sam Colleague", email="sam.colleague@example.com", username="sam-colleague"),
)


def team_members(host: Host) -> tuple[Host, ...]:
    """The hosts of the team's round-robin event type: the user first, then the colleagues."""
    return (host, *COLLEAGUES)


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
        SandboxEventType(124100, "team-intro", "Team Intro", 30, (CAL_VIDEO,), team_id=TEAM_ID,
                         scheduling_type="roundRobin"),
        SandboxEventType(124200, "weekly-coaching", "Weekly Coaching", 30, (CAL_VIDEO,),
                         recurrence={"frequency": "weekly", "interval": 1, "occurrences": 4}),
    )
