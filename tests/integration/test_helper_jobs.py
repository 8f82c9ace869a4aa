"""The Python helper in real jobs: a script in the original helper's async style
(AsyncCronium.stream_input/stream_output), and delete_variable removing the key on the real sidecar.

They need a Python job image with this checkout's helper: `cronium/python:latest` once rebuilt
(`cronium images build` does when the helper changed), or a test image named by CRONIUM_IMAGES_PYTHON.
"""
from __future__ import annotations

import json
import secrets

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


def test_delete_variable_in_a_job_removes_the_key_from_the_namespace(cli, tmp_path):
    key = "deleted_" + secrets.token_hex(4)
    assert cli("vars", "set", key, "1").returncode == 0
    script = tmp_path / "deleter.py"
    script.write_text(f"import cronium\ncronium.output([cronium.delete_variable({key!r}), "
                      f"cronium.delete_variable({key!r}), cronium.get_variable({key!r})])\n")
    proc = cli("run", "--json", str(script))
    result = json.loads(proc.stdout)
    assert result["status"] == "succeeded", proc.stderr.decode() + json.dumps(result)
    assert result["output"] == [True, False, None]  # removed, then already absent
    listed = json.loads(cli("vars", "list", "--json").stdout)
    assert key not in listed  # gone, not a stored null
