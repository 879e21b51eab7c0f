"""Teams of CSMs: who leads whom, which accounts a person may see, who hears escalations.

A team has members, an optional lead and an optional parent team, so teams form
a forest. A lead sees the accounts of every team they lead and of all the
teams below it (the whole tree); a CSM who leads nothing sees only their own.
Everything here is pure: the routing config holds the teams, the API and the
sweeper ask these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Team(BaseModel):
    """``[teams.emea] members = [...], lead = "...", parent = "..."`` (or just a list)."""

    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(default_factory=list)
    lead: str | None = Field(default=None, min_length=1)
    parent: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _members_only(cls, value: Any) -> Any:
        """``emea = ["ana", "ben"]``, the older form, is a team without lead or parent."""
        return {"members": value} if isinstance(value, list) else value


def check_teams(teams: Mapping[str, Team]) -> None:
    """Parents must name a team and never lead back to the team itself.

    Raised as ValueError naming ``teams.<name>.parent`` so a broken config is
    refused at start-up with the line to fix.
    """
    for name, team in teams.items():
        if team.parent is not None and team.parent not in teams:
            raise ValueError(f"teams.{name}.parent: unknown team {team.parent!r}")
    for name in teams:
        seen = [name]
        parent = teams[name].parent
        while parent is not None:
            if parent in seen:
                cycle = " -> ".join([*seen[seen.index(parent) :], parent])
                raise ValueError(f"teams.{name}.parent: teams form a cycle ({cycle})")
            seen.append(parent)
            parent = teams[parent].parent


def subtree(teams: Mapping[str, Team], root: str) -> list[str]:
    """``root`` and every team below it, parents before children."""
    found = [root]
    for team in found:
        found.extend(sorted(name for name, t in teams.items() if t.parent == team))
    return found


def led_teams(teams: Mapping[str, Team], person: str) -> list[str]:
    """Every team ``person`` leads, directly or as the lead of an ancestor team."""
    found: list[str] = []
    for name, team in teams.items():
        if team.lead == person:
            found.extend(t for t in subtree(teams, name) if t not in found)
    return found


def visible_owners(teams: Mapping[str, Team], person: str) -> frozenset[str]:
    """Owners whose accounts ``person`` sees with the team view: self and the led tree.

    An owner is a CSM or a team name (alerts routed to a team name belong to
    that team), so the tree contributes its team names, members and leads.
    """
    owners = {person}
    for name in led_teams(teams, person):
        team = teams[name]
        owners.add(name)
        owners.update(team.members)
        if team.lead:
            owners.add(team.lead)
    return frozenset(owners)


def lead_for(teams: Mapping[str, Team], owner: str) -> str | None:
    """Who an escalation about ``owner``'s alert goes to: the lead above the owner.

    The lead of the owner's first team (config order), or when the owner leads
    that team themself (or is the team), the nearest lead up the parent chain
    who is someone else. None when nobody is above.
    """
    starts = [owner] if owner in teams else []
    starts += [name for name, team in teams.items() if owner in team.members]
    starts += [name for name, team in teams.items() if team.lead == owner]
    for start in starts:
        current: str | None = start
        while current is not None:
            lead = teams[current].lead
            if lead is not None and lead != owner:
                return lead
            current = teams[current].parent
    return None
