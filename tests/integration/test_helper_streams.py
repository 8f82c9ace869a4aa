"""A script in the original helper's async style (AsyncCronium.stream_input/stream_output) in a job.

It needs a Python job image with this checkout's helper: `cronium/python:latest` once rebuilt
(`cronium images build` does when the helper changed), or a test image named by CRONIUM_IMAGES_PYTHON.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

ORIGINAL_STYLE = """
import asyncio
from cronium import AsyncCronium

async def main():
    async with AsyncCronium() as cronium:
        async def shout():
            async for chunk in cronium.stream_input():
                for word in chunk["words"]:
                    yield word.upper()
        await cronium.stream_output(shout())

asyncio.run(main())
"""


def test_stream_input_and_stream_output_work_in_a_job(cli, tmp_path):
    script = tmp_path / "streams.py"
    script.write_text(ORIGINAL_STYLE)
    proc = cli("run", "--json", str(script), "--input", json.dumps({"words": ["a", "b", "c"]}))
    result = json.loads(proc.stdout)
    assert result["status"] == "succeeded", proc.stderr.decode() + json.dumps(result)
    assert result["output"] == ["A", "B", "C"]
