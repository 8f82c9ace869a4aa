"""`security.uid_range`: a clear error for a bad range, and never a profile's (the sidecars') uid."""
from __future__ import annotations

import pytest
from cronium.core.config import load_config
from cronium.core.errors import ConfigError


def config(**flags):
    return load_config(flags=flags, use_user_config=False, environ={})


def test_default_is_off_with_a_high_range():
    cfg = config()
    assert cfg["security.per_execution_uid"] is False and cfg["security.uid_range"] == "200000-265535"


@pytest.mark.parametrize("value", ["0-100", "5000", "300-200", "2000-3000000000", "a-b", "-1-5"])
def test_bad_ranges_say_what_is_expected(value):
    with pytest.raises(ConfigError, match=r"security.uid_range.*LOW-HIGH"):
        config(**{"security.uid_range": value})


def test_a_range_holding_a_profiles_user_is_refused():
    with pytest.raises(ConfigError, match="holds uid 10001, the user of profile 'default'"):
        config(**{"security.uid_range": "10000-10010"})
