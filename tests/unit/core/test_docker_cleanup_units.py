"""`_docker.Owned`: an execution's engine object is removed by the id the engine gave it once it
exists (one call), and by name only while its create has not answered (after checking whose it is)."""
from __future__ import annotations

from types import SimpleNamespace

from cronium.plugins import _docker

LABELS = {"cronium.execution": "exec_0123456789abcdef", "cronium.owner": "me", "cronium.attempt": "1",
          "cronium.installation": "inst"}


class _Api:
    def __init__(self, held: dict[str, tuple[str, dict]]):
        self.held = held  # name -> (id, labels)
        self.calls: list[tuple[str, str]] = []

    def inspect_container(self, name):
        self.calls.append(("inspect", name))
        ident, labels = self.held[name]
        return {"Id": ident, "Config": {"Labels": labels}}

    def remove_container(self, ident, force, v):
        self.calls.append(("remove", ident))


def test_a_created_object_is_removed_by_its_id_in_one_call():
    api = _Api({"cronium-job-x": ("id-of-a-newer-attempt", {**LABELS, "cronium.owner": "other"})})
    owned = _docker.Owned(SimpleNamespace(api=api), "container", "cronium-job-x", LABELS)
    assert owned.created("id-we-created") == "id-we-created"
    owned.remove()
    # By id only: never an inspect, and never the newer attempt's object that took the name.
    assert api.calls == [("remove", "id-we-created")]


def test_before_the_create_answered_it_is_removed_by_name_only_while_it_is_this_attempts():
    ours = _Api({"cronium-job-x": ("id-1", dict(LABELS))})
    _docker.Owned(SimpleNamespace(api=ours), "container", "cronium-job-x", LABELS).remove()
    assert ours.calls == [("inspect", "cronium-job-x"), ("remove", "id-1")]

    theirs = _Api({"cronium-job-x": ("id-2", {**LABELS, "cronium.owner": "other"})})
    _docker.Owned(SimpleNamespace(api=theirs), "container", "cronium-job-x", LABELS).remove()
    assert theirs.calls == [("inspect", "cronium-job-x")]
