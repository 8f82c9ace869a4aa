"""Presence and freshness of every image, without building or pulling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ...errors import CroniumError
from .base_source import resolve_base
from .engine import get_image
from .inputs import (
    IMAGE_NAMES,
    LABEL_INPUTS,
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
    base = resolve_base(client, base, may_pull=False).ref
    statuses: list[ImageStatus] = []
    parent_id: str | None = None
    for name in IMAGE_NAMES:
        tag = tags[name]
        image = get_image(client, tag)
        detail = ""
        up_to_date = False
        try:
            base_ref_id = None
            if name == "base" and base:
                ref = get_image(client, base)
                base_ref_id = ref.id if ref is not None else None
            plan = make_plan(name, tag, parent_id=parent_id, base=base, base_ref_id=base_ref_id)
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
