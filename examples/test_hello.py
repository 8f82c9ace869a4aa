"""A unit test of examples/hello.py without Docker (pip install ./packaging/cronium-helper pytest; pytest examples/).

cronium.testing.runtime() serves the runtime API in memory on 127.0.0.1 and points `import cronium`
at it; the script runs in this process and talks HTTP to it exactly as it would to its sidecar.
"""
from pathlib import Path

import cronium.testing

HELLO = Path(__file__).with_name("hello.py")


def test_hello_greets_its_input_and_counts_its_runs():
    with cronium.testing.runtime(input={"name": "ada"}, variables={"hello_runs": 41}) as rt:
        rt.run(HELLO)
    assert rt.output == {"greeting": "hello, ada", "runs": 42}
    assert rt.variables == {"hello_runs": 42}
    assert rt.condition is True


def test_hello_without_input_greets_the_world():
    with cronium.testing.runtime() as rt:
        rt.run(HELLO)
    assert rt.output == {"greeting": "hello, world", "runs": 1}
