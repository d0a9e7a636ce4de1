import msgspec
import pytest

from livermore_common import messages
from livermore_common.config import CommonSettings, ConfigError, Secret, load_common
from livermore_common.messages import Alert, ControlResponse, LifecycleEvent


def test_alert_round_trip_ignores_unknown_fields() -> None:
    alert = Alert(
        id="a1",
        source_exchange_id=1,
        source_exchange_name="coinbase",
        symbol="BTC-USD",
        timeframe="5m",
        alert_type="macdv",
        trigger_label="level_-150",
        trigger_value=-160.0,
        signal=-150.0,
        histogram=-10.0,
        stage="oversold",
        price=1.0,
        candle_timestamp=0,
        triggered_at=1,
    )
    raw = messages.encode(alert)
    extended = raw[:-1] + b',"added_later":true}'
    assert messages.decode(extended, Alert) == alert


def test_responses_channel_is_a_tagged_union() -> None:
    ev = LifecycleEvent(
        event="exchange:connected",
        exchange_id=1,
        exchange="coinbase",
        instance_id="i1",
        timestamp=5,
    )
    resp = ControlResponse(
        command_id="c", status="ack", exchange="coinbase", instance_id="i1", timestamp=5
    )
    assert messages.decode_response(messages.encode(ev)) == ev
    assert messages.decode_response(messages.encode(resp)) == resp
    with pytest.raises(msgspec.ValidationError):
        messages.decode_response(b'{"kind":"other"}')


def test_settings_from_environment_and_secret_redaction() -> None:
    s = load_common(
        {
            "LIVERMORE_REDIS_URL": "redis://x:1/0",
            "LIVERMORE_CONTROL_SECRET": "hunter2",
            "LIVERMORE_SOMETHING_ELSE": "ignored",
            "PATH": "/bin",
        }
    )
    assert s.redis_url == "redis://x:1/0"
    assert s.control_secret.reveal() == "hunter2"
    assert "hunter2" not in repr(s)
    assert isinstance(CommonSettings().control_secret, Secret)


def test_bad_setting_fails_naming_it() -> None:
    with pytest.raises(ConfigError, match="log_format"):
        load_common({"LIVERMORE_LOG_FORMAT": "xml"})
