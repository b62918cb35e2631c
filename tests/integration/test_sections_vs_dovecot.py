"""BODY[section] answers of the store's FETCH library (basalt-fetch) against a real Dovecot.

The mime-torture corpus goes into a Dovecot Maildir as in test_envelope_vs_dovecot.py; both
answer the same FETCH of part, MIME-header, header-field, text and partial sections, and
the messages whose answers differ must be exactly those listed between the
section-differences markers of docs/compliance-envelope.md (with the reason there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT
# corpus and dovecot are fixtures (one Dovecot per module: shard-sections here).
from test_envelope_vs_dovecot import (DOC, built_binary, corpus, documented_differences,  # noqa: F401
                                      dovecot, fetch_both)

ITEMS = ("BODY.PEEK[1]", "BODY.PEEK[1.MIME]", "BODY.PEEK[2]", "BODY.PEEK[2.1]", "BODY.PEEK[2.MIME]",
         "BODY.PEEK[1.HEADER]", "BODY.PEEK[2.HEADER]", "BODY.PEEK[2.TEXT]", "BODY.PEEK[1.1]",
         "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]", "BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED)]",
         "BODY.PEEK[TEXT]", "BODY.PEEK[]<10.20>", "BODY.PEEK[1]<100000000.5>", "BODY.PEEK[9]<0.5>", "RFC822.SIZE")
FETCH = "(UID " + " ".join(ITEMS) + ")"


def response_key(item: str) -> str:
    """The label a server answers with: no .PEEK, partial as <origin>."""
    key = item.replace(".PEEK", "")
    return re.sub(r"<(\d+)\.\d+>$", r"<\1>", key)


def first_difference(ours, theirs) -> str:
    if not isinstance(ours, bytes) or not isinstance(theirs, bytes):
        return f"ours {ours!r:.200} Dovecot {theirs!r:.200}"
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return (f"sizes {len(ours)}/{len(theirs)}, first difference at {at}: ours {ours[max(0, at - 40):at + 60]!r} "
            f"Dovecot {theirs[max(0, at - 40):at + 60]!r}")


@pytest.fixture(scope="module")
def fetch_binary(basalt_binary_dir) -> Path:
    return built_binary(basalt_binary_dir, "tools/fetch/basalt-fetch")


def test_sections_match_dovecot_except_documented(corpus, dovecot, fetch_binary):
    files = corpus
    keys = [response_key(item) for item in ITEMS]
    differing: dict[str, list[str]] = {}
    samples: list[str] = []
    for f, ours, reference in fetch_both(dovecot, files, FETCH, [str(fetch_binary), FETCH]):
        missing = [k for k in keys if k not in reference or k not in ours]
        assert not missing, f"{f.name}: no {missing} in an answer"
        bad = [k for k in keys if ours[k] != reference[k]]
        if bad:
            differing[f.name] = bad
            samples += [f"{f.name} {k}: {first_difference(ours[k], reference[k])}" for k in bad]
    documented = documented_differences("section-differences")
    report = "\n".join(f"  {name}: {items}" for name, items in sorted(differing.items()))
    report += "\nfirst differences:\n" + "\n".join(samples[:12])
    assert set(differing) == documented, (
        f"{len(files) - len(differing)} of {len(files)} messages match Dovecot; differing:\n{report}\n"
        f"undocumented: {sorted(set(differing) - documented)}\n"
        f"fix them, or list them in {DOC.relative_to(REPO_ROOT)} with the RFC reason")
