"""The notifier registry: each channel module registers its settings model and class once, and that one
line is what the config accepts (by `kind:`) and what the daemon builds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitor.config.response_model import ResponseConfig
from monitor.notifiers.alertmanager import Alertmanager
from monitor.notifiers.command import Command
from monitor.notifiers.email import Email
from monitor.notifiers.registry import CHANNELS, create_notifiers
from monitor.notifiers.webhook import Webhook

CONFIGS = {
    "am": {"kind": "alertmanager", "urls": ["http://127.0.0.1:9093"]},
    "hook": {"kind": "webhook", "url": "http://127.0.0.1:9999/hook", "secret": "${HOOK_SECRET}"},
    "mail": {"kind": "email", "host": "127.0.0.1", "sender": "noc@example.jp"},
    "voice": {"kind": "command", "command": ["/usr/local/bin/call", "{phone}"]},
}


def test_every_registered_kind_is_accepted_by_the_config_and_built_by_its_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    assert set(CHANNELS) == {"alertmanager", "webhook", "email", "command"}
    config = ResponseConfig.model_validate({"notifiers": CONFIGS})
    for name, settings in config.notifiers.items():
        assert type(settings) is CHANNELS[CONFIGS[name]["kind"]].settings
    built = create_notifiers(config.notifiers)
    assert {name: type(n) for name, n in built.items()} == {
        "am": Alertmanager,
        "hook": Webhook,
        "mail": Email,
        "voice": Command,
    }
    for name, notifier in built.items():
        assert (notifier.name, notifier.kind) == (name, CONFIGS[name]["kind"])


def test_an_unregistered_kind_is_a_config_error() -> None:
    with pytest.raises(ValidationError) as caught:
        ResponseConfig.model_validate({"notifiers": {"x": {"kind": "pager", "url": "http://127.0.0.1:1"}}})
    assert "'alertmanager', 'webhook', 'email', 'command'" in str(caught.value)


def test_a_channel_refuses_settings_of_another_kind() -> None:
    settings = ResponseConfig.model_validate({"notifiers": {"am": CONFIGS["am"]}}).notifiers["am"]
    with pytest.raises(TypeError, match="is alertmanager, not email"):
        CHANNELS["email"].create("am", settings)
