"""shared.http: every error path is problem+json; bodies, queries and cursors."""

from datetime import UTC, date, datetime
from typing import Annotated

import flask
import pytest
from pydantic import AwareDatetime, Field, ValidationError

from shared.auth import issue_access_token
from shared.http import (
    ApiModel,
    Conflict,
    PageQuery,
    body,
    create_app,
    decode_cursor,
    encode_cursor,
    json_response,
    page,
    query,
)


class Thing(ApiModel):
    name: str
    size: int = 1


@pytest.fixture()
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    from shared import auth
    from shared.config import settings

    settings.cache_clear()
    auth.reset_keys()
    app = create_app("users")

    @app.post("/api/users/things")
    def make():
        return json_response(body(Thing).model_dump(), 201)

    @app.get("/api/users/things")
    def lst():
        q = query(PageQuery)
        after = q.after()
        rows = [r for r in range(1, 8) if after is None or r > after[0]][: q.limit + 1]
        return json_response(page(rows, q.limit, key=lambda r: [r]))

    @app.get("/api/users/conflict")
    def conflict():
        raise Conflict("It clashes.", allowed=["a", "b"])

    @app.get("/api/users/boom")
    def boom():
        raise RuntimeError("secret internals")

    token, _ = issue_access_token("u1", ["viewer"])
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    yield c
    auth.reset_keys()


def assert_problem(resp, status):
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    data = resp.get_json(force=True)
    assert data["status"] == status and data["title"] and data["request_id"]
    return data


def test_valid_body(client):
    resp = client.post("/api/users/things", json={"name": " x "})
    assert resp.status_code == 201 and resp.get_json() == {"name": "x", "size": 1}


def test_malformed_json_is_400(client):
    assert_problem(
        client.post("/api/users/things", data="{oops", content_type="application/json"), 400
    )


def test_unknown_field_is_422_with_field_errors(client):
    data = assert_problem(client.post("/api/users/things", json={"name": "x", "colour": 1}), 422)
    assert data["errors"][0]["field"] == "colour"


def test_wrong_type_is_422(client):
    data = assert_problem(client.post("/api/users/things", json={"name": "x", "size": "big"}), 422)
    assert data["errors"][0]["field"] == "size"


def test_not_json_is_415(client):
    assert_problem(
        client.post(
            "/api/users/things", data="name=x", content_type="application/x-www-form-urlencoded"
        ),
        415,
    )


def test_too_large_is_413(client, monkeypatch):
    big = '{"name": "' + "x" * 2_000_000 + '"}'
    assert_problem(client.post("/api/users/things", data=big, content_type="application/json"), 413)


def test_missing_token_is_401_with_challenge():
    app = flask.Flask("x")
    del app
    from shared.http import create_app as mk

    resp = mk("users").test_client().get("/api/users/anything")
    data = assert_problem(resp, 401)
    assert "Bearer" in resp.headers["WWW-Authenticate"]
    assert data["detail"]


def test_404_405_409_500(client):
    assert_problem(client.get("/api/users/nothing/here"), 404)
    resp = client.delete("/api/users/things")
    assert_problem(resp, 405)
    assert "GET" in resp.headers["Allow"]
    data = assert_problem(client.get("/api/users/conflict"), 409)
    assert data["allowed"] == ["a", "b"]
    data = assert_problem(client.get("/api/users/boom"), 500)
    assert "secret" not in str(data)


def test_pagination_walks_every_item_once(client):
    seen, cursor = [], None
    while True:
        url = "/api/users/things?limit=3" + (f"&cursor={cursor}" if cursor else "")
        data = client.get(url).get_json()
        seen += data["items"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert seen == list(range(1, 8))


def test_bad_limit_and_cursor(client):
    data = assert_problem(client.get("/api/users/things?limit=0"), 422)
    assert data["errors"][0]["field"] == "limit"
    assert client.get("/api/users/things?limit=100000").status_code == 200
    assert_problem(client.get("/api/users/things?cursor=%%%"), 400)
    assert_problem(client.get("/api/users/things?nope=1"), 422)


def test_request_id_is_kept_or_made(client):
    resp = client.get("/api/users/things", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    assert len(client.get("/api/users/things").headers["X-Request-ID"]) == 32


def test_cursor_roundtrip():
    assert decode_cursor(encode_cursor(["2026-01-01T00:00:00Z", "id-1"])) == [
        "2026-01-01T00:00:00Z",
        "id-1",
    ]


class Window(PageQuery):
    since: datetime | None = None
    days: list[date] = []
    until: Annotated[AwareDatetime, Field(description="with an offset")] | None = None


@pytest.mark.parametrize(
    "data",
    [
        {"since": -755},
        {"since": "-2.6e-280"},
        {"since": "1700000000"},
        {"days": ["2024-01-01", 5]},
        {"until": "-755"},
    ],
)
def test_a_number_is_not_a_date(data):
    with pytest.raises(ValidationError) as exc:
        Window.model_validate(data)
    assert [e["loc"][0] for e in exc.value.errors()] == list(data)


def test_iso_dates_are_dates():
    got = Window.model_validate(
        {"since": "2026-12-01T10:00:00Z", "days": ["2026-12-01"], "limit": "5"}
    )
    assert got.since == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert got.days == [date(2026, 12, 1)] and got.limit == 5


def test_the_date_check_leaves_discriminated_unions_alone():
    from typing import Literal

    class A(ApiModel):
        kind: Literal["a"]
        at: datetime

    class B(ApiModel):
        kind: Literal["b"]

    class Steps(ApiModel):
        steps: list[Annotated[A | B, Field(discriminator="kind")]]

    got = Steps.model_validate(
        {"steps": [{"kind": "a", "at": "2026-12-01T00:00:00Z"}, {"kind": "b"}]}
    )
    assert isinstance(got.steps[0], A) and isinstance(got.steps[1], B)
    with pytest.raises(ValidationError):
        Steps.model_validate({"steps": [{"kind": "a", "at": 5}]})


def test_a_stripped_string_schema_states_its_length_after_stripping():
    """ApiModel strips strings before minLength applies, so its schema says the same with a
    pattern: every string the schema accepts is accepted, every other refused (the contract
    fuzzer sent "\\u000b" for a minLength 1 path and got 422)."""
    import itertools
    import re

    from shared.http._bodies import ApiModel

    class Named(ApiModel):
        one: str = Field(min_length=1, max_length=20)
        three: str | None = Field(default=None, min_length=3)
        many: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
        coded: str = Field(default="x", min_length=1, pattern="^[a-z]+$")

    props = Named.model_json_schema()["properties"]
    assert props["coded"]["pattern"] == "^[a-z]+$"  # a pattern of its own is kept
    patterns = {
        "one": props["one"]["pattern"],
        "three": props["three"]["anyOf"][0]["pattern"],
        "many": props["many"]["items"]["pattern"],
    }
    # pydantic strips Unicode White_Space: U+0085 is, U+FEFF and U+001C are not
    alphabet = [" ", "a", "\t", "\u0085", "\u3000", "\ufeff", "\x1c"]
    for length in range(5):
        for chars in itertools.product(alphabet, repeat=length):
            value = "".join(chars)
            for field, pattern in patterns.items():
                data = {"one": "x", field: [value] if field == "many" else value}
                try:
                    Named.model_validate(data)
                    accepted = True
                except ValidationError:
                    accepted = False
                assert accepted == (re.search(pattern, value) is not None), (field, value)
