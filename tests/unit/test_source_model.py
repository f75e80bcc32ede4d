"""source's domain rules, no I/O: GitHub's signature (its documented test vector), the
Conventional Commits header, and the parsing of every test payload in tests/data/github/
(push with several commits, forced push, branch deletion, tag push, pull_request, ping, REST
list commits)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from functions.source import model

DATA = Path(__file__).resolve().parent.parent / "data" / "github"


def payload(name: str) -> dict:
    return json.loads((DATA / name).read_text())


# --- signatures --------------------------------------------------------------------------

# docs.github.com "Validating webhook deliveries": the test vector.
VECTOR_SECRET = b"It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_signature_matches_githubs_documented_test_vector():
    assert model.sign(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    assert model.signature_valid(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        VECTOR_SIGNATURE[:-1] + "f",  # one digit off
        VECTOR_SIGNATURE.replace("sha256=", "sha1="),  # the legacy header's algorithm
        VECTOR_SIGNATURE.replace("sha256=", ""),
        "sha256=zz" + VECTOR_SIGNATURE[9:],
    ],
)
def test_a_wrong_or_missing_signature_is_refused(header):
    assert not model.signature_valid(VECTOR_SECRET, VECTOR_BODY, header)


def test_the_signature_covers_every_byte_and_the_secret():
    assert not model.signature_valid(VECTOR_SECRET, VECTOR_BODY + b" ", VECTOR_SIGNATURE)
    assert not model.signature_valid(b"It's a secret to everybody", VECTOR_BODY, VECTOR_SIGNATURE)


def test_upper_case_hex_is_accepted():
    assert model.signature_valid(
        VECTOR_SECRET, VECTOR_BODY, "sha256=" + VECTOR_SIGNATURE[7:].upper()
    )


# --- conventional commits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("feat: add a thing", ("feat", None, False, "add a thing")),
        ("feat(api): add stats\n\nbody", ("feat", "api", False, "add stats")),
        ("fix!: drop python 3.10", ("fix", None, True, "drop python 3.10")),
        ("refactor(ingest)!: rename", ("refactor", "ingest", True, "rename")),
        ("Docs: capitalised type", ("docs", None, False, "capitalised type")),
        (
            "chore: bump\n\nBREAKING CHANGE: config keys renamed",
            ("chore", None, True, "bump"),
        ),
        ("perf(db): index\n\nBREAKING-CHANGE: x", ("perf", "db", True, "index")),
        ('Revert "feat: add a thing"', ("revert", None, False, 'Revert "feat: add a thing"')),
        ("wip: spikes", ("wip", None, False, "spikes")),
    ],
)
def test_conventional_headers_are_parsed(message, expected):
    parsed = model.conventional(message)
    assert parsed is not None
    assert (parsed.type, parsed.scope, parsed.breaking, parsed.description) == expected


@pytest.mark.parametrize(
    "message",
    [
        "Merge pull request #12 from octo-org/feature",
        "Update README.md",
        "feat:missing space",
        "feat : space before colon",
        "(api): no type",
        "",
        "feat(a(b)): nested scope",
    ],
)
def test_messages_without_a_conventional_header(message):
    assert model.conventional(message) is None


# --- push payloads -----------------------------------------------------------------------


def test_push_with_several_commits():
    push = model.parse_push(payload("push_several_commits.json"))
    assert push.repository == "octo-org/hello-world"
    assert (push.ref_type, push.ref_name) == ("branch", "main")
    assert not push.forced and not push.deleted and push.records_commits
    assert [c.sha[:7] for c in push.commits] == ["1a2b3c4", "2b3c4d5", "3c4d5e6"]
    first, second, third = push.commits
    assert first.author_name == "Mona Lisa" and first.author_login == "mona"
    assert first.added == ("api/stats.py",) and first.modified == ("api/__init__.py",)
    assert first.files_changed == 2
    # +01:00 in the payload, stored in UTC
    assert first.committed_at == datetime(2026, 11, 30, 8, 15, 2, tzinfo=UTC)
    assert first.conventional_type == "feat"
    assert second.author_email == "hubot@example.com" and second.conventional_type == "fix"
    assert third.removed == ("docs/old.md",) and third.conventional_type == "docs"
    parsed = model.conventional(third.message)
    assert parsed is not None and parsed.breaking
    assert first.additions is None and first.deletions is None  # pushes carry no line counts


def test_forced_push():
    push = model.parse_push(payload("push_forced.json"))
    assert push.forced and push.ref_name == "feature/retry" and push.records_commits
    assert len(push.commits) == 1 and push.commits[0].conventional_type == "refactor"


def test_branch_deletion_records_nothing():
    push = model.parse_push(payload("push_branch_deleted.json"))
    assert push.deleted and push.after == model.ZERO_SHA
    assert push.commits == () and not push.records_commits


def test_tag_push_records_no_commits():
    push = model.parse_push(payload("push_tag.json"))
    assert (push.ref_type, push.ref_name) == ("tag", "v1.4.0")
    assert push.created and not push.records_commits


def test_pull_request():
    pr = model.parse_pull_request(payload("pull_request_opened.json"))
    assert (pr.action, pr.number, pr.state, pr.merged) == ("opened", 42, "open", False)
    assert (pr.head_ref, pr.base_ref, pr.author_login) == ("feature/retry", "main", "mona")
    assert pr.repository == "octo-org/hello-world"


def test_ping_names_its_repository():
    ping = payload("ping.json")
    assert model.repository_of(ping) == "octo-org/hello-world"
    assert ping["hook"]["events"] == ["push", "pull_request"]


@pytest.mark.parametrize(
    "breaks",
    [
        lambda p: p.pop("repository"),
        lambda p: p.update(commits="nope"),
        lambda p: p["commits"][0].update(id="not-a-sha"),
        lambda p: p["commits"][0].update(timestamp="yesterday"),
        lambda p: p["commits"][0].update(added="README.md"),
        lambda p: p.update(after=None),
    ],
)
def test_malformed_push_payloads_are_payload_invalid(breaks):
    data = payload("push_several_commits.json")
    breaks(data)
    with pytest.raises(model.PayloadInvalid):
        model.parse_push(data)


def test_a_payload_that_is_not_an_object():
    with pytest.raises(model.PayloadInvalid):
        model.parse_push([1, 2])
    assert model.repository_of("text") is None


# --- REST --------------------------------------------------------------------------------


def test_rest_list_commits_items():
    items = [model.parse_rest_commit(i) for i in payload("rest_list_commits.json")]
    assert [c.sha[:7] for c in items] == ["3c4d5e6", "2b3c4d5", "1a2b3c4"]
    newest = items[0]
    assert newest.author_login == "mona" and newest.author_email == "mona@example.com"
    assert newest.committed_at == datetime(2026, 11, 30, 9, 2, 45, tzinfo=UTC)
    assert not newest.files_known and newest.files_changed is None  # the list has no files


def test_rest_single_commit_brings_files_and_stats():
    item = payload("rest_list_commits.json")[0] | {
        "stats": {"total": 14, "additions": 10, "deletions": 4},
        "files": [
            {"filename": "README.md", "status": "modified", "additions": 3, "deletions": 1},
            {"filename": "docs/old.md", "status": "removed", "additions": 0, "deletions": 3},
            {"filename": "docs/new.md", "status": "added", "additions": 7, "deletions": 0},
            {"filename": "x.py", "status": "renamed", "additions": 0, "deletions": 0},
        ],
    }
    c = model.parse_rest_commit(item)
    assert (c.additions, c.deletions, c.files_changed) == (10, 4, 4)
    assert c.added == ("docs/new.md",) and c.removed == ("docs/old.md",)
    assert c.modified == ("README.md", "x.py")


def test_next_link():
    header = (
        '<https://api.github.com/repositories/1/commits?page=2>; rel="next", '
        '<https://api.github.com/repositories/1/commits?page=5>; rel="last"'
    )
    assert model.next_link(header) == "https://api.github.com/repositories/1/commits?page=2"
    assert model.next_link('<https://x/?page=5>; rel="last"') is None
    assert model.next_link(None) is None


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["octo-org", "a", "A1-b"])
def test_good_owners(owner):
    assert model.check_owner(owner) == owner


@pytest.mark.parametrize("owner", ["", "-x", "a/b", "a" * 40, "a_b"])
def test_bad_owners(owner):
    with pytest.raises(ValueError):
        model.check_owner(owner)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a b", ""])
def test_bad_names(name):
    with pytest.raises(ValueError):
        model.check_name(name)


@pytest.mark.parametrize("branch", ["main", "feature/retry", "release-1.2"])
def test_good_branches(branch):
    assert model.check_branch(branch) == branch


@pytest.mark.parametrize("branch", ["a..b", "a b", "x.lock", "-x", "a~1", "/x", "x/"])
def test_bad_branches(branch):
    with pytest.raises(ValueError):
        model.check_branch(branch)


def test_author_key_prefers_email_then_login():
    assert model.author_key("Mona@Example.com", "mona", "Mona") == "mona@example.com"
    assert model.author_key(None, "Hubot", "H") == "hubot"
    assert model.author_key(None, None, "Some One") == "some one"


def test_model_imports_no_web_or_crypto_library():
    code = (
        "import sys; import functions.source.model; "
        "print(sorted(m for m in ('flask', 'jwt', 'cryptography', 'sqlalchemy') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"
