"""`python -m cronium.core.agent SETTINGS-JSON`: the detached agent `cronium run` starts."""
from __future__ import annotations

import json
import logging
import sys

from ..config import load_config, state_dir
from ..errors import CroniumError
from .protocol import fingerprint
from .server import serve


def main(argv: list[str]) -> int:
    settings = json.loads(argv[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(process)d %(levelname)s %(message)s")
    try:
        config = load_config(config_file=settings["config_file"], flags=settings["overrides"])
        mine = fingerprint(config)
        if mine != settings["fingerprint"]:  # the configuration changed since the client read it
            raise CroniumError("the configuration changed between the client and the agent's start")
        serve(config, state=state_dir(), fingerprint=mine)
    except CroniumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
