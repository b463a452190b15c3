"""The copy's manifest, signed with the course key, so an edited manifest is noticed.

`make` writes .tinyres-assignment as JSON with an HMAC-SHA256 of its content under the course
key: $TINYRES_COURSE_KEY if set, else the key in ~/.config/tinyres/course-key (made, random, by
the first `make`; grading never makes one). A student who edits the manifest ("A2" -> "A1")
cannot re-sign it without the key. The signed content includes the SHA-256 of every file `make`
wrote, so the grader also refuses a manifest copied from another copy (see grader.py).

Without a key on the machine (the documented Gradescope setup, which grades with
--assignment), no manifest can be checked, and the grader says so only when it would need one.
The key never reaches the student's process: the grader runs it with a scrubbed environment,
passes nothing by argv, and blanks the key out of anything the process writes back.
"""
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

KEY_FILE = Path.home() / ".config" / "tinyres" / "course-key"


def course_key(create=False):
    """The course key (bytes), or None when there is none here and `create` is false."""
    key = os.environ.get("TINYRES_COURSE_KEY")
    if key:
        return key.strip().encode()
    if not KEY_FILE.is_file():
        if not create:
            return None
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        KEY_FILE.touch(mode=0o600)
        KEY_FILE.write_text(secrets.token_hex(32))
    return KEY_FILE.read_text().strip().encode()


def _signature(content, key):
    body = json.dumps(content, sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def write_manifest(path, content):
    """Sign `content` and write it to `path` (making the course key if there is none yet)."""
    signature = _signature(content, course_key(create=True))
    Path(path).write_text(json.dumps({**content, "signature": signature}, indent=2))


def read_manifest(path):
    """The manifest's content if the file exists and its signature holds under the course key,
    else None."""
    key = course_key()
    try:
        content = json.loads(Path(path).read_text())
        signature = content.pop("signature")
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None
    if key is None or not hmac.compare_digest(str(signature), _signature(content, key)):
        return None
    return content


def manifest_problem(path):
    """Why the manifest at `path` cannot be trusted, or None when it can."""
    path = Path(path)
    if not path.is_file():
        return f"no manifest {path.name}"
    if course_key() is None:
        return (f"no course key on this machine to check the manifest {path.name} "
                f"(TINYRES_COURSE_KEY, or {KEY_FILE})")
    if read_manifest(path) is None:
        return (f"the manifest {path.name} was edited or signed with another course key "
                f"(its signature does not match)")
    return None
