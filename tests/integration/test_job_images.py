"""Job images through the installed `cronium` executable (issue 14): scripts written for the original
Cronium images (their helper paths), scripts in a user's own image (`run --image IMAGE script`)."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

#: Scripts in the original Cronium images' style: the helper at the paths those images installed it.
ORIGINAL_STYLE = {
    "orig.sh": "#!/bin/bash\nsource /usr/local/bin/cronium.sh\n"
               "cronium_output \"{\\\"lang\\\": \\\"bash\\\", \\\"in\\\": $(cronium_input)}\"\n",
    "orig.py": "import importlib.util\n"
               "spec = importlib.util.spec_from_file_location(\n"
               "    'cronium', '/usr/local/lib/python3.12/site-packages/cronium.py')\n"
               "cronium = importlib.util.module_from_spec(spec)\n"
               "spec.loader.exec_module(cronium)\n"
               "cronium.output({'lang': 'python', 'in': cronium.input()})\n",
    "orig.js": "const cronium = require('/usr/local/lib/cronium.js');\n"
               "(async () => { await cronium.output({lang: 'node', in: await cronium.input()}); })()\n"
               "  .catch((e) => { console.error(e.message); process.exit(1); });\n",
}


def run_json(cli, tmp_path, name: str, body: str, *args: str) -> dict:
    script = tmp_path / name
    script.write_text(body)
    proc = cli("run", "--json", *args, str(script))
    assert proc.stdout, proc.stderr.decode()
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", sorted(ORIGINAL_STYLE))
def test_original_style_script_finds_the_helper_at_the_original_path(cli, tmp_path, name):
    result = run_json(cli, tmp_path, name, ORIGINAL_STYLE[name], "--input", '{"n": 1}')
    assert result["status"] == "succeeded", result
    assert result["output"]["in"] == {"n": 1}
