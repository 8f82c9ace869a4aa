"""Variable versions (If-Match, 409) and the atomic increment/append routes, on the in-memory store.
Quotas and the atomicity under real concurrency are tested against Redis
(tests/integration/test_sidecar_store.py, test_runtime_api.py)."""
from __future__ import annotations

import asyncio
import json

import pytest
from cronium.sidecar.errors import StoreUnavailableError, VersionConflictError
from cronium.sidecar.routes.variables import MAX_UPDATE_ROUNDS, update_variable
from sidecar_helpers import MemoryStore, assert_error, exec_path


def put(client, auth, key, value, if_match=None):
    headers = {**auth, **({"If-Match": if_match} if if_match is not None else {})}
    return client.put(exec_path(f"/variables/{key}"), headers=headers, json={"value": value})[1]


def test_every_write_gets_a_new_version_that_reads_return(client, auth):
    first = put(client, auth, "v", 1).json["version"]
    second = put(client, auth, "v", 1).json["version"]
    assert second != first
    _, got = client.get(exec_path("/variables/v"), headers=auth)
    assert got.json["data"]["version"] == second
    assert got.headers["etag"] == f'"{second}"'


def test_if_match_with_a_stale_version_is_409_and_writes_nothing(client, auth, store):
    stale = put(client, auth, "v", "first").json["version"]
    current = put(client, auth, "v", "second").json["version"]
    response = put(client, auth, "v", "lost update", if_match=f'"{stale}"')
    body = assert_error(response, 409, "version_conflict")
    assert f"version {current}" in body["message"]
    assert response.headers["etag"] == f'"{current}"'
    assert json.loads(store.variables["v"]) == "second"
    assert put(client, auth, "v", "third", if_match=str(current)).status == 200


def test_if_match_zero_means_only_if_not_set(client, auth, store):
    assert put(client, auth, "lock", "me", if_match="0").status == 200
    assert_error(put(client, auth, "lock", "you", if_match="0"), 409, "version_conflict")
    assert json.loads(store.variables["lock"]) == "me"


def test_delete_with_a_stale_version_is_409(client, auth, store):
    stale = put(client, auth, "v", 1).json["version"]
    put(client, auth, "v", 2)
    _, response = client.delete(exec_path("/variables/v"), headers={**auth, "If-Match": str(stale)})
    assert_error(response, 409, "version_conflict")
    assert "v" in store.variables


@pytest.mark.parametrize("header", ["abc", "*", "-1", '"1', "1.5"])
def test_a_malformed_if_match_is_400(client, auth, header):
    body = assert_error(put(client, auth, "v", 1, if_match=header), 400, "invalid_request")
    assert "If-Match" in body["message"]


@pytest.mark.parametrize(("stored", "by", "expected"), [
    (None, None, 1), ("null", 5, 5), ("41", None, 42), ("1.5", 2, 3.5), ('"7"', 3, 10), ("10", -2.5, 7.5),
])
def test_increment(client, auth, store, stored, by, expected):
    if stored is not None:
        store.variables["n"] = stored
    body = {} if by is None else {"by": by}
    _, response = client.post(exec_path("/variables/n/increment"), headers=auth, json=body)
    assert response.status == 200, response.text
    assert response.json["data"]["value"] == expected
    assert json.loads(store.variables["n"]) == expected


@pytest.mark.parametrize(("stored", "by", "reason"), [
    ('"abc"', 1, "holds a string, not a number"), ("[1]", 1, "holds a list"), ("true", 1, "holds a boolean"),
    ("1", "2", "'by' must be a number"), ("1", True, "'by' must be a number"),
    ("1.5e308", 1.5e308, "range of finite numbers"),
])
def test_increment_refuses_what_is_not_a_number(client, auth, store, stored, by, reason):
    store.variables["n"] = stored
    _, response = client.post(exec_path("/variables/n/increment"), headers=auth, json={"by": by})
    assert reason in assert_error(response, 400, "invalid_request")["message"]
    assert store.variables["n"] == stored


@pytest.mark.parametrize(("stored", "item", "separator", "expected"), [
    (None, "a", "", "a"), ("[1]", 2, "", [1, 2]), ('"a"', "b", ",", "a,b"), ('""', "b", ",", "b"),
    ('"a"', {"x": 1}, " ", 'a {"x":1}'), ("3", "x", "-", "3-x"), ("null", [1], "", [1]),
])
def test_append(client, auth, store, stored, item, separator, expected):
    if stored is not None:
        store.variables["log"] = stored
    _, response = client.post(exec_path("/variables/log/append"), headers=auth,
                              json={"value": item, "separator": separator})
    assert response.status == 200, response.text
    assert response.json["data"]["value"] == expected


def test_append_to_an_object_is_400(client, auth, store):
    store.variables["o"] = '{"a":1}'
    _, response = client.post(exec_path("/variables/o/append"), headers=auth, json={"value": 1})
    assert "holds an object" in assert_error(response, 400, "invalid_request")["message"]


class ConflictingStore(MemoryStore):
    """Another writer gets in between read and write `conflicts` times."""

    def __init__(self, conflicts: int) -> None:
        super().__init__()
        self.conflicts = conflicts

    async def write_variable(self, key, json_text, expected=None):
        if self.conflicts:
            self.conflicts -= 1
            await super().write_variable(key, json.dumps(100 + self.conflicts))  # the other writer
        return await super().write_variable(key, json_text, expected)


def test_update_retries_on_the_value_another_writer_left():
    store = ConflictingStore(conflicts=3)
    value, _ = asyncio.run(update_variable(store, "n", lambda current: (current or 0) + 1))
    assert value == 101  # the last other writer wrote 100; our +1 applied to that, not to a stale read
    assert json.loads(store.variables["n"]) == 101


def test_update_gives_up_without_writing_when_it_never_gets_a_turn():
    store = ConflictingStore(conflicts=MAX_UPDATE_ROUNDS)
    with pytest.raises(StoreUnavailableError, match="kept changing"):
        asyncio.run(update_variable(store, "n", lambda current: "mine"))
    assert json.loads(store.variables["n"]) != "mine"


def test_memory_store_conflict_matches_the_protocol():
    store = MemoryStore()
    with pytest.raises(VersionConflictError):
        asyncio.run(store.write_variable("k", "1", expected=5))
