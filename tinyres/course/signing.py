"""The copy's manifest, signed with the course key, so an edited manifest is noticed.

`make` writes .tinyres-assignment as JSON with an HMAC-SHA256 of its content under the course
key: $TINYRES_COURSE_KEY if set, else the key in ~/.config/tinyres/course-key (made, random, on
the first `make`). Course staff make copies and grade with the same key (on an autograder
machine: set TINYRES_COURSE_KEY to the key file's content). A student who edits the manifest
("A2" -> "A1") cannot re-sign it without the key, and the grader refuses the manifest.

Students' code never sees the key: the grader runs it with a scrubbed environment.
"""
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

KEY_FILE = Path.home() / ".config" / "tinyres" / "course-key"


def course_key():
    key = os.environ.get("TINYRES_COURSE_KEY")
    if key:
        return key.strip().encode()
    if not KEY_FILE.is_file():
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        KEY_FILE.touch(mode=0o600)
        KEY_FILE.write_text(secrets.token_hex(32))
    return KEY_FILE.read_text().strip().encode()


def _signature(content):
    body = json.dumps(content, sort_keys=True).encode()
    return hmac.new(course_key(), body, hashlib.sha256).hexdigest()


def write_manifest(path, content):
    Path(path).write_text(json.dumps({**content, "signature": _signature(content)}, indent=2))


def read_manifest(path):
    """The manifest's content if the file exists and its signature holds under the course key,
    else None."""
    try:
        content = json.loads(Path(path).read_text())
        signature = content.pop("signature")
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return content if hmac.compare_digest(str(signature), _signature(content)) else None


def manifest_problem(path):
    """Why the manifest at `path` cannot be trusted, or None when it can."""
    if not Path(path).is_file():
        return f"no manifest {Path(path).name}"
    if read_manifest(path) is None:
        return (f"the manifest {Path(path).name} was edited or signed with another course key "
                f"(its signature does not match)")
    return None
