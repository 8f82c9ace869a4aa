"""The sidecar plugin's Redis ACL plan: read-only record, its own results hash, no SELECT (what Redis
then holds is checked in tests/integration/test_faults.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from cronium.core.errors import PhaseError
from cronium.core.store.keys import Keys
from cronium.plugins import sidecar

EXECUTION = "exec_00000000000000aa"


def test_the_record_is_read_only_and_select_is_not_granted():
    rules = sidecar.acl_rules(Keys("p:"), EXECUTION, "team", "pw")
    assert "%R~p:exec:exec_00000000000000aa" in rules and "~p:exec:exec_00000000000000aa" not in rules
    assert "~p:exec:exec_00000000000000aa:out" in rules
    assert {"~p:vars:team", "~p:vars:team:versions", "~p:vars:team:meta"} <= set(rules)
    assert "+select" not in rules and not any(r.startswith("+@") or r == "~*" for r in rules)


@pytest.mark.parametrize("url", ["redis://redis:6379/1", "redis://redis:6379/15"])
def test_a_sidecar_url_on_another_database_is_refused_before_any_user_exists(url):
    created = []
    store = SimpleNamespace(keys=Keys("p:"), acl=SimpleNamespace(create=lambda *a: created.append(a)))
    runtime = SimpleNamespace(store=store, sidecar_redis_url=url)
    execution = SimpleNamespace(execution_id=EXECUTION, namespace="team")
    with pytest.raises(PhaseError, match="database other than 0"):
        sidecar.create_acl_user(runtime, execution, resources=None)
    assert created == []
