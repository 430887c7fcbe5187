"""``NEWSWIRE_*`` variables: a value that cannot be meant is an error naming the variable."""

from __future__ import annotations

import pytest

from newswire.config import ConfigError, schedule_from_env, settings_from_env


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("NEWSWIRE_PARK_AFTER", "3.5", "expected a whole number"),
        ("NEWSWIRE_POLL_FLOOR", "soon", "expected a number"),
        # read by the extraction workers alone, and any word but an "off" one meant on
        ("NEWSWIRE_TRAFILATURA_SPEEDUPS", "maybe", "expected 1 or 0"),
    ],
)
def test_a_value_that_cannot_be_meant_names_its_variable(var: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=f"^{var}='{value}': {words}"):
        schedule_from_env({var: value})


@pytest.mark.parametrize("value", ["0", "1", "off", "On", "true", "NO"])
def test_the_speedups_switch_takes_the_usual_words(value: str) -> None:
    assert schedule_from_env({"NEWSWIRE_TRAFILATURA_SPEEDUPS": value}) == {}


def test_settings_from_the_environment_alone() -> None:
    settings = settings_from_env({"NEWSWIRE_TOPIC_PREFIX": "wire", "NEWSWIRE_PER_HOST": "2", "NEWSWIRE_LEASE_SECONDS": "60"})
    assert (settings.topic_prefix, settings.per_host, settings.lease_seconds) == ("wire", 2, 60.0)
