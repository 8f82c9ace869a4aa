"""How a script job's script reaches its interpreter inside the job container.

The script travels over stdin after the secret env block (see the Docker executor's prelude): a
small `/bin/sh` command writes it to the tmpfs work dir and execs the interpreter on it.

In a cronium job image the helper (`import cronium`, `require('cronium')`, `source cronium.sh`) is
part of the image. A script job given an image of the user's own (`cronium run --image IMAGE
script.py`, `image = …` of a script job in a deployment) gets the helper delivered the same way as
the script: its files come first on stdin, framed as text lines, and the command writes them under
`/work/.cronium/<language>/` and puts that directory first on `PYTHONPATH`, `NODE_PATH` or `PATH`.
Nothing is mounted and the image needs no change; it needs `/bin/sh` and the interpreter. An image
without the interpreter ends the job with exit code 127 and a message saying what is missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .model import EXTENSION_TYPES, INTERPRETERS, JobSpec
from .spec import script_file_name

HELPER_DIR = "/work/.cronium"
#: The shell body of a script job in a cronium job image: write stdin to the file "$1", exec the
#: interpreter "$0" on it (a pooled slot's job container runs it too, see plugins/_slots.py).
WRITE_AND_EXEC = 'cat > "$1" && exec "$0" "$1"'
FILE_MARK = "#cronium-helper-file "
END_MARK = "#cronium-helpers-end"

#: Job type -> its helper files (under images/helpers/) and how the interpreter finds them.
HELPERS: dict[str, tuple[tuple[str, ...], str]] = {
    "python": (("python/cronium.py",), 'export PYTHONPATH="$_d/python${PYTHONPATH:+:$PYTHONPATH}"'),
    "node": (("node/cronium/index.js", "node/cronium/package.json"),
             'export NODE_PATH="$_d/node${NODE_PATH:+:$NODE_PATH}"'),
    "bash": (("bash/cronium.sh",), 'export PATH="$_d/bash:$PATH"'),
}

#: Reads FILE_MARK-framed text lines from stdin up to END_MARK into files under $_d.
_UNPACK = ('_d=' + HELPER_DIR + '; _f=/dev/null; '
           'while IFS= read -r _l && [ "$_l" != "' + END_MARK + '" ]; do case "$_l" in '
           '"' + FILE_MARK + '"*) _f="$_d/${_l#"' + FILE_MARK + '"}"; mkdir -p "${_f%/*}" && : > "$_f" || exit 1;; '
           '*) printf \'%s\\n\' "$_l" >> "$_f";; esac; done; unset _l _f; ')


def uses_delivered_helper(spec: JobSpec) -> bool:
    """A script job in an image given by the user (not the configured job image of its type)."""
    return spec.job_type in HELPERS and spec.image is not None


def script_command(spec: JobSpec) -> tuple[str, ...]:
    """The command of a script job: write the script (from stdin) to /work and exec the
    interpreter on it; first unpack the delivered helper when the image is the user's own."""
    body = script_body(spec.job_type, uses_delivered_helper(spec))
    return ("/bin/sh", "-c", body, INTERPRETERS[spec.job_type], f"/work/{script_file_name(spec)}")


def script_body(job_type: str, delivered_helper: bool) -> str:
    """The `/bin/sh -c` body of a script job ("$0" the interpreter, "$1" the script's path):
    `WRITE_AND_EXEC`, after unpacking the helper when it is delivered (a pooled slot accepts
    exactly these two, see plugins/_slots.py)."""
    if not delivered_helper:
        return WRITE_AND_EXEC
    interpreter = INTERPRETERS[job_type]
    missing = (f"cronium: this image has no {interpreter} on its PATH, and a {job_type} script needs it: "
               f"use an image that has it, or one built FROM cronium/{job_type} (see docs/job-images.md)")
    check = f'command -v "$0" >/dev/null 2>&1 || {{ echo "{missing}" >&2; exit 127; }}; '
    return _UNPACK + HELPERS[job_type][1] + '; cat > "$1" || exit 1; ' + check + 'exec "$0" "$1"'


def script_stdin(spec: JobSpec) -> bytes:
    """What follows the secret env block on the job's stdin: the script, after the helper files
    when they are delivered."""
    script = spec.script or b""
    return helper_bundle(spec.job_type) + script if uses_delivered_helper(spec) else script


def helper_bundle(job_type: str) -> bytes:
    """The helper files of `job_type`, each a FILE_MARK line then its lines, then END_MARK."""
    from .host.images.inputs import images_root

    root = images_root().joinpath("helpers")
    parts = []
    for rel in HELPERS[job_type][0]:
        text = root.joinpath(*rel.split("/")).read_text()
        if FILE_MARK in text or END_MARK in text or "\0" in text:
            raise ValueError(f"images/helpers/{rel} contains a helper frame marker or a NUL byte")
        parts.append(f"{FILE_MARK}{rel}\n{text if text.endswith(chr(10)) else text + chr(10)}")
    return ("".join(parts) + END_MARK + "\n").encode()


def script_in_image(args: Sequence[str], job_type: str | None) -> bool:
    """`cronium run --image IMAGE ARGS…`: is ARGS one script (run in IMAGE with the helper) rather
    than a command? Yes with --type, or when ARGS is one existing file with a script extension."""
    if job_type is not None:
        return True
    return (len(args) == 1 and Path(args[0]).suffix.lower() in EXTENSION_TYPES and Path(args[0]).is_file())
