"""Teams as a forest: validation, the lead's tree, who hears escalations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.alerts.routing import RoutingConfig
from services.alerts.store import escalation_target
from services.alerts.teams import Team, lead_for, led_teams, subtree, visible_owners

TEAMS = {
    "europe": Team(lead="lena"),
    "emea": Team(members=["alice", "bob"], lead="erin", parent="europe"),
    "dach": Team(members=["dora"], parent="emea"),
    "americas": Team(members=["carl"], lead="sam"),
}


def test_a_lead_sees_the_whole_tree_a_csm_only_themself() -> None:
    assert led_teams(TEAMS, "lena") == ["europe", "emea", "dach"]
    assert visible_owners(TEAMS, "lena") == {
        "lena",
        "europe",
        "emea",
        "dach",
        "erin",
        "alice",
        "bob",
        "dora",
    }
    assert visible_owners(TEAMS, "erin") == {"erin", "emea", "dach", "alice", "bob", "dora"}
    assert visible_owners(TEAMS, "alice") == {"alice"}
    assert visible_owners(TEAMS, "sam") == {"sam", "americas", "carl"}


def test_escalations_go_to_the_lead_above() -> None:
    assert lead_for(TEAMS, "alice") == "erin"
    assert lead_for(TEAMS, "dora") == "erin"  # dach has no lead: its parent's
    assert lead_for(TEAMS, "erin") == "lena"  # a lead's own alerts go up
    assert lead_for(TEAMS, "emea") == "erin"  # routed to the team name
    assert lead_for(TEAMS, "lena") is None
    assert lead_for(TEAMS, "nobody") is None
    routing = RoutingConfig(teams=TEAMS, escalation={"to": "cs-leads"})
    assert escalation_target(routing, "alice") == "erin"
    assert escalation_target(routing, "lena") == "cs-leads"
    assert escalation_target(RoutingConfig(), "alice") == "alice"


def test_the_list_form_is_a_team_of_members() -> None:
    routing = RoutingConfig.model_validate({"teams": {"emea": ["ana", "ben"]}})
    assert routing.teams["emea"] == Team(members=["ana", "ben"])
    assert routing.teams_of("ana") == ["emea"]


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        ({"a": {"parent": "zz"}}, "teams.a.parent: unknown team 'zz'"),
        ({"a": {"parent": "b"}, "b": {"parent": "a"}}, "teams form a cycle"),
        ({"a": {"parent": "a"}}, "teams.a.parent: teams form a cycle (a -> a)"),
        ({"a": {"lead": ""}}, "teams.a.lead"),
        ({"a": {"members": "ana"}}, "teams.a.members"),
        ({"a": {"leader": "x"}}, "teams.a.leader"),
    ],
)
def test_bad_teams_are_refused_naming_the_field(teams: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        RoutingConfig.model_validate({"teams": teams})
    assert message in str(error.value).replace("\n  ", ".")


@given(st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=8))
def test_a_tree_holds_each_team_once_and_every_descendant(parents: list[int]) -> None:
    # Team i's parent is an earlier team (or none): always a forest.
    teams = {
        f"t{i}": Team(lead=f"lead{i}", parent=f"t{p}" if p < i else None)
        for i, p in enumerate(parents)
    }
    RoutingConfig(teams=teams)
    for name in teams:
        tree = subtree(teams, name)
        assert len(tree) == len(set(tree))
        for other in teams:
            ancestor, current = False, teams[other].parent
            while current is not None:
                ancestor = ancestor or current == name
                current = teams[current].parent
            assert (other in tree) == (other == name or ancestor)
