"""Hand-edited two-tower bundles are refused with a line that names the
fault, not only that one is there."""

import json

import numpy as np
import pytest

from recsys.bundles import load_bundle
from recsys.bundles.two_tower import BundleError
from recsys.bundles.two_tower import spec_hash
from recsys.storage.files import file_digests


def _edit_manifest(path, change):
    """`change(manifest)`, its config's hash updated to match (as whoever
    edits it to pass `_check_unedited` would: the checks after it are the
    ones tested)."""
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    change(manifest)
    try:
        manifest["spec_hash"] = spec_hash(manifest["config"])
    except (KeyError, TypeError):
        pass  # a config the load refuses before its hash
    manifest_path.write_text(json.dumps(manifest))


def _refusal(path):
    with pytest.raises(BundleError) as info:
        load_bundle(str(path))
    return str(info.value)


def test_a_seen_indptr_that_falls_midway_is_named_where(copy):
    # Both ends as required, two middle entries swapped (and re-signed):
    # "starts at 0, ends at N" said nothing about what was wrong.
    indptr = np.load(copy / "seen_indptr.npy")
    at = int(np.flatnonzero(np.diff(indptr) > 0)[0]) + 1
    indptr[at], indptr[at + 1] = indptr[at + 1], indptr[at]
    np.save(copy / "seen_indptr.npy", indptr, allow_pickle=False)
    digests = file_digests(str(copy), exclude=("manifest.json",))
    _edit_manifest(copy, lambda m: m.update(files=digests))
    message = _refusal(copy)
    assert "seen_indptr.npy must never fall" in message
    assert f"{indptr[at]} at position {at}, then {indptr[at + 1]}" in message
    assert "starts at" not in message


def test_a_format_version_written_as_text_is_named_a_string(copy):
    # "format_version '2'; this recsys reads format_version 2" read as a
    # contradiction.
    _edit_manifest(copy, lambda m: m.update(format_version="2"))
    message = _refusal(copy)
    assert "format_version must be an integer" in message
    assert "Received: the string '2'" in message
