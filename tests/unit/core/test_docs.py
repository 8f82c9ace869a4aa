"""docs/plugins.md cannot drift from core/hookspecs.py."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from cronium.core import docgen, hookspecs

ROOT = Path(__file__).resolve().parents[3]
PLUGINS_MD = ROOT / "docs" / "plugins.md"
#: Arguments described once, in the hookspecs module docstring ("Shared arguments").
SHARED_ARGUMENTS = ("execution", "runtime", "resources")


def spec_functions():
    return [(name, fn) for name, fn in vars(hookspecs).items() if hasattr(fn, "cronium_spec")]


def test_plugins_md_hook_reference_is_generated_from_hookspecs():
    text = PLUGINS_MD.read_text()
    assert docgen.section_of(text) == docgen.hook_reference(), \
        "docs/plugins.md is out of date: run `python -m cronium.core.docgen`"


def test_every_hookspec_has_a_docstring():
    assert spec_functions(), "no hookspecs found"
    for name, fn in spec_functions():
        assert (fn.__doc__ or "").strip(), f"hookspec {name} has no docstring"


def test_every_hookspec_parameter_is_documented():
    module_doc = hookspecs.__doc__
    for shared in SHARED_ARGUMENTS:
        assert f"`{shared}`" in module_doc
    for name, fn in spec_functions():
        for param in inspect.signature(fn).parameters:
            if param in SHARED_ARGUMENTS:
                continue
            assert f":param {param}:" in fn.__doc__, f"hookspec {name}: parameter {param!r} is not documented"


def test_reference_lists_every_hook_in_lifecycle_order():
    reference = docgen.hook_reference()
    names = [name for name, _ in spec_functions()]
    positions = [reference.index(f"#### {name}\n") for name in names]
    assert positions == sorted(positions)
    assert [d.name for d in docgen.hook_docs()] == names
    assert names[:3] == ["startup", "register_commands", "issue_token"] and names[-2:] == ["cleanup", "reap_orphans"]


def test_reference_shows_signature_firstresult_and_docstring():
    reference = docgen.hook_reference()
    for name, fn in spec_functions():
        block = reference.split(f"#### {name}\n", 1)[1].split("\n#### ", 1)[0]
        assert f"def {name}{inspect.signature(fn)}:" in block
        firstresult = fn.cronium_spec["firstresult"]
        assert ("firstresult: yes" in block) is firstresult
        assert ("firstresult: no" in block) is (not firstresult)
        first_line = inspect.cleandoc(fn.__doc__).splitlines()[0]
        assert first_line in block


def test_param_fields_become_a_list():
    assert docgen._docstring_markdown("Intro.\n\n:param a: one\n    continued.\n:return: x") == \
        "Intro.\n\n- `a`: one continued.\n- returns: x"


def test_replace_section_keeps_the_rest(tmp_path):
    text = f"# Title\n\nprose\n\n{docgen.START}\nold stuff\n{docgen.END}\n\nafter\n"
    updated = docgen.replace_section(text, "NEW\n")
    assert updated == f"# Title\n\nprose\n\n{docgen.START}\nNEW\n{docgen.END}\n\nafter\n"
    assert docgen.section_of(updated) == "NEW\n"
    with pytest.raises(ValueError):
        docgen.section_of("no markers here")


def test_main_rewrites_and_checks(tmp_path, capsys):
    path = tmp_path / "plugins.md"
    path.write_text(f"intro\n{docgen.START}\nstale\n{docgen.END}\noutro\n")
    assert docgen.main(["--check", str(path)]) == 1
    assert docgen.main([str(path)]) == 0
    text = path.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{docgen.END}\noutro\n")
    assert docgen.section_of(text) == docgen.hook_reference()
    assert docgen.main(["--check", str(path)]) == 0
    path.write_text("no markers\n")
    assert docgen.main([str(path)]) == 2
    assert re.search(r"markers", capsys.readouterr().err)
