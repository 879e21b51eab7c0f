"""Who owns an account, and which webhooks hear about its alerts.

The routing config is a TOML file a CS-ops person edits::

    default_owner = "cs-team"
    csms = ["dave@example.com"]   # more assignable CSMs (owners named below count too)

    [[rules]]                 # first match wins; omitted keys match anything
    segment = "enterprise"
    owner = "alice@example.com"

    [[rules]]
    plan = "pro"
    mrr_min = 1000            # inclusive
    mrr_max = 5000            # exclusive
    owner = "bob@example.com"

    [teams.emea]              # team name -> members, lead, parent team
    members = ["alice@example.com", "bob@example.com"]
    lead = "erin@example.com"     # sees the team and its sub-teams; gets escalations
    parent = "europe"             # optional; a team's lead also leads its sub-teams

    [escalation]
    after_seconds = 1800      # critical alerts still open after this are escalated
    to = "cs-leads"           # owner name whose webhooks get the escalation

    [[webhooks]]
    name = "alice-slack"
    owner = "alice@example.com"   # a CSM, a team name, or "*" for every alert
    url = "https://hooks.slack.com/services/..."
    format = "slack"              # or "json" (HMAC-signed)
    secret = "..."                # json only; else HEALTHSTREAM_ALERTS_WEBHOOK_SECRET

An account's ``csm`` from ``account.created``/``account.updated`` events always
wins over rules: the CRM knows better than a band of MRR.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.alerts import teams as team_tree
from services.alerts.teams import Team


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=1)
    segment: str | None = None
    plan: str | None = None
    mrr_min: float | None = None
    mrr_max: float | None = None

    def matches(self, segment: str | None, plan: str | None, mrr: float | None) -> bool:
        if self.segment is not None and self.segment != segment:
            return False
        if self.plan is not None and self.plan != plan:
            return False
        if self.mrr_min is not None and (mrr is None or mrr < self.mrr_min):
            return False
        return not (self.mrr_max is not None and (mrr is None or mrr >= self.mrr_max))


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    owner: str = Field(min_length=1, description='CSM, team name, or "*".')
    url: str = Field(pattern=r"^https?://")
    format: Literal["slack", "json"] = "json"
    secret: str | None = None


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_seconds: float | None = Field(default=None, gt=0)
    to: str | None = None


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_owner: str | None = None
    #: CSMs alerts may be assigned to, besides every owner and team member named below.
    csms: list[str] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    teams: dict[str, Team] = Field(default_factory=dict)
    escalation: Escalation = Field(default_factory=Escalation)
    webhooks: list[Webhook] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_webhook_names(self) -> RoutingConfig:
        names = [hook.name for hook in self.webhooks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"webhook names must be unique, repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _teams_form_a_forest(self) -> RoutingConfig:
        team_tree.check_teams(self.teams)
        return self

    @classmethod
    def load(cls, path: Path | None) -> RoutingConfig:
        if path is None:
            return cls()
        with path.open("rb") as handle:
            return cls.model_validate(tomllib.load(handle))

    def owner_for(
        self, segment: str | None = None, plan: str | None = None, mrr: float | None = None
    ) -> str | None:
        for rule in self.rules:
            if rule.matches(segment, plan, mrr):
                return rule.owner
        return self.default_owner

    def known_owners(self) -> set[str]:
        """Every owner this config names: ``csms``, rule and webhook owners, teams and members.

        ``assign`` accepts only these (and the CSMs of API keys), so an alert
        cannot be handed to a name nobody reads, where it would vanish from every view.
        """
        known = set(self.csms)
        if self.default_owner:
            known.add(self.default_owner)
        known.update(rule.owner for rule in self.rules)
        known.update(hook.owner for hook in self.webhooks if hook.owner != "*")
        for name, team in self.teams.items():
            known.add(name)
            known.update(team.members)
            if team.lead:
                known.add(team.lead)
        if self.escalation.to:
            known.add(self.escalation.to)
        return known

    def teams_of(self, csm: str) -> list[str]:
        return [name for name, team in self.teams.items() if csm in team.members]

    def visible_owners(self, person: str) -> frozenset[str]:
        """What ``person`` sees with the team view (see :mod:`services.alerts.teams`)."""
        return team_tree.visible_owners(self.teams, person)

    def led_teams(self, person: str) -> list[str]:
        return team_tree.led_teams(self.teams, person)

    def lead_for(self, owner: str | None) -> str | None:
        """The team lead above ``owner``: where escalations about its alerts go."""
        return team_tree.lead_for(self.teams, owner) if owner else None

    def webhooks_for(self, owner: str | None) -> list[Webhook]:
        """Webhooks of the owner, of the owner's teams, and the catch-all ones, once each."""
        targets = {"*"}
        if owner:
            targets.add(owner)
            targets.update(self.teams_of(owner))
        return [hook for hook in self.webhooks if hook.owner in targets]

    def webhook(self, name: str) -> Webhook | None:
        return next((hook for hook in self.webhooks if hook.name == name), None)
