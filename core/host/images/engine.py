"""What the build steps and the status share: the build error (with the tail of the failing step's
output), condensed progress reporting, and looking an image up on the engine."""
from __future__ import annotations

import collections
import time
from typing import Callable, Sequence

from ...errors import CroniumError

Progress = Callable[[str, str], None]


class ImageBuildError(CroniumError):
    """Building an image failed; carries the tail of the failing step's output."""

    def __init__(self, name: str, reason: str, *, tail: Sequence[str] = (), hint: str | None = None):
        text = f"building image '{name}' failed: {reason}"
        tail = [line.rstrip("\n") for line in tail if line.strip()]
        if tail:
            text += "\n  last output:\n" + "\n".join("    " + line for line in tail)
        super().__init__(text, hint=hint)
        self.name = name
        self.reason = reason
        self.tail = list(tail)


def get_image(client, ref: str):
    """The image `ref` names on the engine, or None."""
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.NotFound:
        return None


class Reporter:
    """Condense a noisy stream of lines into progress messages; keep a tail for errors."""

    def __init__(self, name: str, progress: Progress | None, *, every: float = 1.0, tail: int = 40):
        self.name = name
        self.progress = progress
        self.every = every
        self.tail: collections.deque[str] = collections.deque(maxlen=tail)
        self._last = float("-inf")

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(self.name, message)
        self._last = time.monotonic()

    def line(self, text: str, *, important: bool = False) -> None:
        text = text.rstrip()
        if not text:
            return
        self.tail.append(text)
        if important or time.monotonic() - self._last >= self.every:
            self.say(text)
