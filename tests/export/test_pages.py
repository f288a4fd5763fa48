"""The console's export page (/admin/export): each format downloads the API's file with its headers, the
filters apply, the page says how many rows the file will hold, and bad values are a message on the page
(never a 500, never a cut-off file)."""

from __future__ import annotations

import io
import json
import re

import pyarrow.parquet as pq
import pytest

from app.comparisons.models import Comparison
from app.export.service import pseudonym
from tests.helpers import login

HTML = {"accept": "text/html"}
PAGE, FILE, API = "/admin/export", "/admin/export/file", "/api/v1/export"


@pytest.fixture
def signed_in(client, world) -> None:
    """The world's admin (root-admin) signed in on `client`; its annotators alice, bob and carol are named
    annotator0, annotator1 and annotator2."""
    assert login(client, "root-admin").status_code == 303


def rows_of(response) -> list[dict]:
    if response.headers["content-type"] == "application/vnd.apache.parquet":
        return pq.read_table(io.BytesIO(response.content)).to_pylist()
    return [json.loads(line) for line in response.text.splitlines()]


def expected_rows(html: str) -> int:
    return int(re.search(r"the file will hold <strong>(\d+)</strong> row", html).group(1))


@pytest.mark.parametrize(
    "params",
    [
        {"format": "trl"},
        {"format": "trl", "include_ties": "true", "style": "standard"},
        {"format": "hh"},
        {"format": "raw"},
        {"format": "kto"},
        {"format": "kto", "include_ties": "true"},
        {"format": "raw", "file_format": "parquet"},
        {"format": "trl", "aggregate": "majority"},
    ],
)
def test_each_format_downloads_the_apis_file(client, world, admin_token, signed_in, params):
    download = client.get(FILE, params=params, headers=HTML)
    assert download.status_code == 200
    api = client.get(API, params=params, headers=admin_token)
    assert download.headers["content-type"] == api.headers["content-type"]
    extension = params.get("file_format", "jsonl")
    assert re.fullmatch(
        rf'attachment; filename="prefloop-{params["format"]}-\d{{8}}T\d{{6}}Z\.{extension}"',
        download.headers["content-disposition"],
    )
    assert rows_of(download) == rows_of(api)
    assert rows_of(download)  # the world has rows of every kind


@pytest.mark.parametrize(
    "params",
    [
        {"format": "trl"},
        {"format": "trl", "include_ties": "true"},
        {"format": "hh"},
        {"format": "raw"},
        {"format": "kto"},
        {"format": "kto", "include_ties": "true"},
        {"format": "trl", "annotator": "annotator1"},
    ],
)
def test_the_page_says_how_many_rows_the_file_holds(client, world, signed_in, params):
    page = client.get(PAGE, params=params, headers=HTML)
    assert page.status_code == 200
    assert expected_rows(page.text) == len(rows_of(client.get(FILE, params=params, headers=HTML)))


def test_rows_that_depend_on_grouping_are_not_guessed(client, world, signed_in):
    page = client.get(PAGE, params={"aggregate": "majority"}, headers=HTML)
    assert "8</strong> judgments match" in page.text
    assert "the number of rows depends on how judgments group by pair" in page.text


@pytest.mark.parametrize(
    ("params", "judgments"),
    [
        ({"annotator": "annotator0"}, [0, 2, 4]),
        ({"choice": "tie"}, [4]),
        ({"version": "3"}, [4, 5, 6, 7]),  # either completion
        ({"since": "2026-01-01", "until": "2026-01-01"}, list(range(8))),
        ({"since": "2026-01-02"}, []),
        ({"annotator": "annotator1", "choice": "a"}, [1, 6]),
    ],
)
def test_filters_apply_to_the_file(client, db, world, signed_in, params, judgments):
    rows = rows_of(client.get(FILE, params={"format": "raw", **params}, headers=HTML))
    assert [row["judgment_id"] for row in rows] == [world.judgments[i] for i in judgments]


def test_prompt_filter_keeps_its_pairs_judgments(client, db, world, signed_in):
    with db.session() as session:
        prompt_id = session.get(Comparison, world.comparisons["c1"]).prompt_id
    rows = rows_of(client.get(FILE, params={"format": "raw", "prompt": prompt_id}, headers=HTML))
    assert [row["judgment_id"] for row in rows] == [world.judgments[i] for i in (0, 1, 3)]


def test_annotator_is_chosen_by_username_and_exported_by_pseudonym(client, world, settings, signed_in):
    rows = rows_of(client.get(FILE, params={"format": "raw", "annotator": "annotator2"}, headers=HTML))
    assert {row["judge"] for row in rows} == {pseudonym(secret=settings.secret_key, user_id=world.users["carol"])}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "csv"}, "Format: Input should be 'trl', 'hh', 'raw' or 'kto'"),
        ({"prompt": "x"}, "Prompt id: Input should be a valid integer"),
        ({"since": "someday"}, "From: Input should be a valid date"),
        ({"annotator": "nobody"}, "No annotator is named 'nobody'."),
        ({"version": "9"}, "Policy version 9 does not exist."),
        ({"format": "raw", "aggregate": "majority"}, "format=raw has one row per judgment"),
        ({"since": "2026-01-03", "until": "2026-01-02"}, "'until' must be later than 'since'."),
    ],
)
@pytest.mark.parametrize("url", [PAGE, FILE])
def test_bad_values_are_a_message_on_the_page(client, world, signed_in, url, params, message):
    response = client.get(url, params=params, headers=HTML)
    assert response.status_code == 422
    assert "content-disposition" not in response.headers
    assert 'class="alert error" role="alert"' in response.text
    assert message in response.text.replace("&#39;", "'")


def test_a_bad_value_keeps_the_rest_of_the_form(client, world, signed_in):
    params = {"format": "kto", "include_ties": "true", "annotator": "annotator1", "prompt": "x", "since": "2026-01-02"}
    response = client.get(PAGE, params=params, headers=HTML)
    assert response.status_code == 422
    assert "Prompt id: Input should be a valid integer" in response.text
    form = response.text.split('id="export-form"', 1)[1].split("</form>", 1)[0]
    assert '<option value="kto" selected>' in form and '<option value="annotator1" selected>' in form
    assert 'name="include_ties" value="true" checked' in form
    assert 'name="prompt" value="x"' in form and 'name="since" value="2026-01-02"' in form
