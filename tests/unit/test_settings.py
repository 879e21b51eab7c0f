import pytest

from healthstream.settings import Scope, Settings, parse_api_keys


def test_api_keys_parse_scopes_and_csm() -> None:
    keys = parse_api_keys("k1:ingest, k2:alerts:read+alerts:write@ann@example.com,k3:admin")
    assert [k.key for k in keys] == ["k1", "k2", "k3"]
    assert keys[0].scopes == {Scope.INGEST}
    assert keys[1].scopes == {Scope.ALERTS_READ, Scope.ALERTS_WRITE}
    assert keys[1].csm == "ann@example.com"
    assert keys[2].allows(Scope.INGEST) and keys[2].allows(Scope.ALERTS_WRITE)
    assert not keys[0].allows(Scope.ALERTS_READ)
    assert "k2" not in repr(keys[1])


@pytest.mark.parametrize("bad", ["nokey", "k:", ":ingest", "k:ingest+nope"])
def test_api_keys_reject_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_api_keys(bad)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHSTREAM_API_KEYS", "abc:ingest+alerts:read")
    monkeypatch.setenv("HEALTHSTREAM_INGEST_PORT", "9999")
    monkeypatch.setenv("HEALTHSTREAM_TOPIC_PREFIX", "x-")
    settings = Settings(_env_file=None)
    assert settings.ingest_port == 9999
    assert settings.find_key("abc") is not None
    assert settings.find_key("abd") is None
    assert settings.topics.usage == "x-usage-events"
    assert settings.topics.dlq(settings.topics.usage) == "x-usage-events.dlq"
    assert settings.embedded_broker == (settings.kafka_bootstrap_servers == "")
