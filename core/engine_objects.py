"""The engine objects of an execution: those labelled with it, and the pooled ones claimed for it.

Docker cannot relabel a container or a network. A pooled sidecar (label `cronium.pool`, claimed by
its container id) and the objects of a pooled slot (`cronium.role=slot`, `cronium.execution` = the
slot's name, claimed by that name; `cronium.slot.part` says sidecar, job or network) keep the
neutral labels they were made with. The claim record (`store.pool_claims`, written before the
object gets anything of the execution) says which execution, owner and attempt they serve.

`labels_as_claimed` is that rule, in one place: the reapers judge by it, `cronium stats` finds a
job running in a slot by it, and `execution_objects` (the test fixtures' "what is left of this
execution") lists what the engine holds of one execution with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import StoreUnavailable

#: `cronium.role` of every object of a pooled slot; `SLOT_PART` names which part it is.
SLOT_ROLE = "slot"
SLOT_PART = "cronium.slot.part"


@dataclass(frozen=True)
class Claims:
    """The claim records of pooled objects: pooled sidecars by container id, slots by name."""

    sidecars: dict[str, dict] = field(default_factory=dict)
    slots: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def read(cls, store: Any) -> "Claims":
        """Both kinds, from the store (raises StoreUnavailable)."""
        return cls(sidecars=store.pool_claims.all("sidecar"), slots=store.pool_claims.all("slot"))

    @classmethod
    def read_or_none(cls, store: Any) -> "Claims":
        """Both kinds, or none when the store cannot be read (labels alone then)."""
        try:
            return cls.read(store)
        except StoreUnavailable:
            return cls()

    def claimed_for(self, execution: str) -> tuple[list[str], list[str]]:
        """(pooled sidecar container ids, slot names) claimed for `execution`."""
        return ([ident for ident, c in self.sidecars.items() if c.get("execution") == execution],
                [name for name, c in self.slots.items() if c.get("execution") == execution])


def labels_as_claimed(item: dict, claims: Claims) -> dict:
    """The labels of an engine object (`item` as the engine lists it) as its execution's: a claimed
    pooled sidecar or slot object gets the execution, owner and attempt of its claim record (and a
    slot's part its role: `job`, `sidecar`, `network`); any other object keeps its own labels."""
    labels = dict(item.get("Labels") or {})
    if "cronium.pool" in labels:
        claim = claims.sidecars.get(item.get("Id", ""))
    elif labels.get("cronium.role") == SLOT_ROLE:
        claim = claims.slots.get(labels.get("cronium.execution", ""))
        if claim is not None and labels.get(SLOT_PART):
            labels["cronium.role"] = labels[SLOT_PART]
    else:
        claim = None
    if claim is not None:
        labels.update({"cronium.execution": claim["execution"], "cronium.owner": claim.get("owner", ""),
                       "cronium.attempt": claim.get("attempt", "")})
    return labels


def execution_objects(client: Any, claims: Claims, kind: str, execution: str) -> list[dict]:
    """The containers (also stopped ones) or networks (`kind`) of `execution` on the engine: those
    labelled `cronium.execution=<execution>` and the pooled ones claimed for it, each listed once."""
    api = client.api
    listing = (lambda f: api.containers(all=True, filters=f)) if kind == "container" else \
        (lambda f: api.networks(filters=f))
    sidecar_ids, slot_names = claims.claimed_for(execution)
    found = listing({"label": f"cronium.execution={execution}"})
    for name in slot_names:
        found += listing({"label": [f"cronium.execution={name}", f"cronium.role={SLOT_ROLE}"]})
    if kind == "container":
        found += [c for ident in sidecar_ids for c in listing({"id": ident})]
    unique = {item["Id"]: item for item in found}
    return [item for item in unique.values() if labels_as_claimed(item, claims).get("cronium.execution") == execution]
