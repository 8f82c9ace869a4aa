"""Presence and freshness of every image, without building or pulling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ...errors import CroniumError
from .base_source import BaseChoice, resolve_base
from .engine import get_image
from .inputs import (
    IMAGE_NAMES,
    LABEL_INPUTS,
    Plan,
    default_tags,
    image_labels,
    is_current,
    make_plan,
)


@dataclass(frozen=True)
class ImageStatus:
    name: str
    tag: str
    present: bool
    up_to_date: bool
    id: str | None = None
    size: int | None = None  # bytes
    created: str | None = None  # RFC 3339 text from the engine
    detail: str = ""  # why it is not up to date, when known


def image_status(client, tags: Mapping[str, str] | None = None, *, base: str | None = None) -> list[ImageStatus]:
    """Presence and freshness of every image (no build, no pull); `base` is the
    ``images.build_base`` setting."""
    tags = {**default_tags(), **dict(tags or {})}
    choice = resolve_base(client, base, may_pull=False)
    statuses: list[ImageStatus] = []
    parent_id: str | None = None
    for name in IMAGE_NAMES:
        tag = tags[name]
        image = get_image(client, tag)
        detail = ""
        up_to_date = False
        try:
            plan = _plan(client, choice, name, tag, parent_id)
        except CroniumError as exc:
            plan = None
            detail = exc.message
        if image is None:
            detail = detail or "missing"
        elif plan is not None:
            up_to_date = is_current(image, plan)
            if not up_to_date:
                detail = "not built by cronium" if LABEL_INPUTS not in image_labels(image) else "inputs changed"
        if name == "base":
            parent_id = image.id if image is not None else None
        statuses.append(ImageStatus(
            name=name, tag=tag, present=image is not None, up_to_date=up_to_date,
            id=image.id if image is not None else None,
            size=image.attrs.get("Size") if image is not None else None,
            created=image.attrs.get("Created") if image is not None else None,
            detail=detail,
        ))
    return statuses


def _plan(client, choice: BaseChoice, name: str, tag: str, base_id: str | None) -> Plan:
    """The plan `name` is compared with: on cronium's base, or on its official image (`registry`)."""
    def image_id(ref: str) -> str | None:
        image = get_image(client, ref)
        return image.id if image is not None else None

    upstream = choice.upstream(name) if name != "base" else None
    if upstream:
        return make_plan(name, tag, parent_id=image_id(upstream), base=choice.ref, base_ref_id=None,
                         upstream=upstream)
    base_ref_id = image_id(choice.ref) if name == "base" and choice.ref else None
    return make_plan(name, tag, parent_id=base_id, base=choice.ref, base_ref_id=base_ref_id)
