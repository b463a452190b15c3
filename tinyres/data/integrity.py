"""Checking data files against known checksums, once per file.

Bits rot, copies get cut short, and a damaged batch file still unpickles: it trains silently on
wrong pixels. So before a data file is used it is checked against what is known about it:

    1. a ``SHA256SUMS`` manifest, in ``sha256sum`` format ("<64 hex digits>  <path>", paths
       relative to the manifest's folder), in the file's folder or its parent: the project's
       CIFAR-10 subset carries one, and so does the bundled sample
    2. the official MD5 of the CIFAR-10 file of that name (the per-file MD5s torchvision lists)

A file listed in a manifest must match it. The caller decides what an official name with another
MD5 means (cifar.py: a full-size batch file is a damaged official one; a smaller one is a user's
own subset, loaded with a note that it could not be verified).

Hashing the full CIFAR-10 (180 MB) takes a second, so the digests of each file are remembered,
with its size and modification time, in ``digests.json`` in the tinyres cache folder (and in
memory): a file is hashed again when its size or modification time changed, when its digests
are older than a week (RECHECK_AFTER), and whenever the caller asks (``verify=True``: `tinyres
train --verify`). What this trades: a bit that rots on disk without changing the file's size or
time goes unseen for up to a week, unless --verify is given; the run's own record (a SHA-256 of
the images it loaded, in its checkpoint) catches it on every resume and eval.
"""
import hashlib
import json
import os
import time
from pathlib import Path

MANIFEST = "SHA256SUMS"
# The per-file MD5s of the official cifar-10-batches-py, as torchvision lists them.
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
RECHECK_AFTER = 7 * 24 * 3600       # seconds: remembered digests older than a week are redone
_remembered = {}        # absolute path -> {"size", "mtime_ns", "md5", "sha256", "hashed_at"}


def file_digests(path, cache_folder, verify=False):
    """{"md5": ..., "sha256": ...} of the file at `path`, hashed only if `verify`, or if its size
    or modification time changed, or RECHECK_AFTER passed, since it was last hashed (remembered
    in `cache_folder`/digests.json)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    cache_file = Path(cache_folder) / "digests.json"
    if key not in _remembered:
        _remembered.update(_read_cache(cache_file))
    known = _remembered.get(key)
    fresh = known and time.time() - known.get("hashed_at", 0) < RECHECK_AFTER
    if fresh and not verify and \
            (known["size"], known["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
        return known
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    _remembered[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                        "md5": md5.hexdigest(), "sha256": sha256.hexdigest(),
                        "hashed_at": time.time()}
    _write_cache(cache_file)
    return _remembered[key]


def _read_cache(cache_file):
    try:
        return json.loads(Path(cache_file).read_text())
    except (OSError, ValueError):           # absent, unreadable or damaged: hash again
        return {}


def _write_cache(cache_file):
    """Remember the digests for the next run (atomically; a read-only cache is no error)."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        merged = {**_read_cache(cache_file), **_remembered}
        temporary = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(merged, indent=0))
        os.replace(temporary, cache_file)
    except OSError:
        pass


def manifest_entry(path):
    """(manifest path, expected SHA-256) for the file, from a SHA256SUMS in its folder or its
    parent; None when no manifest lists it."""
    path = Path(path).resolve()
    for folder in (path.parent, path.parent.parent):
        manifest = folder / MANIFEST
        if not manifest.is_file():
            continue
        for line in manifest.read_text().splitlines():
            digest, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*")          # "*" marks binary mode in sha256sum
            if name and (folder / name).resolve() == path:
                return manifest, digest.lower()
    return None


def verify(path, cache_folder, rehash=False):
    """How the file at `path` checks out: ("manifest", manifest path) or ("official", None) when
    it matches, ("unknown", None) when nothing is known about it, ("official-mismatch", md5)
    when it carries an official name with another MD5; a mismatch with a manifest raises
    ChecksumMismatch. `rehash`: hash the file now, whatever is remembered."""
    digests = file_digests(path, cache_folder, verify=rehash)
    listed = manifest_entry(path)
    if listed is not None:
        manifest, expected = listed
        if digests["sha256"] != expected:
            raise ChecksumMismatch(f"{path} is damaged: its SHA-256 is {digests['sha256']}, "
                                   f"{manifest} lists {expected}")
        return "manifest", manifest
    official = OFFICIAL_MD5.get(Path(path).name)
    if official is None:
        return "unknown", None
    if digests["md5"] == official:
        return "official", None
    return "official-mismatch", digests["md5"]


class ChecksumMismatch(Exception):
    """A file does not match the checksum listed for it."""
