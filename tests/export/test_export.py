"""GET /api/v1/export: the four row layouts, their options, Parquet, streaming in batches, bad input."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from sqlalchemy import update

from app.auth.models import User
from app.export import formats
from app.export.formats import split_of
from app.prompts.models import Prompt
from app.training import snapshot as training_snapshot

URL = "/api/v1/export"


def export(client, headers, **params) -> list[dict]:
    response = client.get(URL, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def judgment_ids(rows: list[dict]) -> list[list[int]]:
    return [[j["id"] for j in row["metadata"]["judgments"]] for row in rows]


def test_trl_rows_report_preferences_not_positions(client, world, admin_token):
    rows = export(client, admin_token)
    j = world.judgments
    # Ties (j[4]) and both-bad (j[5]) are left out of training pairs by default.
    assert judgment_ids(rows) == [[j[0]], [j[1]], [j[2]], [j[3]], [j[6]], [j[7]]]
    first = rows[0]  # alice chose a while it was shown on the right (shown_left "b")
    assert first["prompt"] == [{"role": "user", "content": "Name a colour."}]
    assert first["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert first["rejected"] == [{"role": "assistant", "content": "Green."}]
    assert first["metadata"]["judgments"][0]["shown_left"] == "b"
    carol = rows[3]  # chose b on the same pair
    assert (carol["chosen"][0]["content"], carol["rejected"][0]["content"]) == ("Green.", "Blue.")
    meta = carol["metadata"]
    assert (meta["chosen_policy_version"], meta["rejected_policy_version"]) == (2, 1)
    assert meta["rejected_completion_id"] == first["metadata"]["chosen_completion_id"]
    assert meta["judgments"][0]["round_id"] == world.rounds["r2"]
    assert meta["comparison_id"] == world.comparisons["c1"] and meta["choice"] == "b"
    assert rows[4]["prompt"][0] == {"role": "system", "content": "Be brief."}


def test_include_ties_keeps_ties_and_both_bad_marked(client, world, admin_token):
    rows = export(client, admin_token, include_ties="true")
    assert len(rows) == 8
    marked = {r["metadata"]["judgments"][0]["id"]: r["metadata"]["choice"] for r in rows}
    assert marked[world.judgments[4]] == "tie" and marked[world.judgments[5]] == "both_bad"


def test_majority_aggregates_each_comparison(client, world, admin_token):
    rows = export(client, admin_token, aggregate="majority")
    # c1: a, a, b -> a; c2: b; c3 tie and c4 both-bad are not pairs; c5 split 1-1 -> a tie.
    assert [r["metadata"]["comparison_id"] for r in rows] == [
        world.comparisons["c1"],
        world.comparisons["c2"],
    ]
    assert judgment_ids(rows)[0] == [world.judgments[0], world.judgments[1], world.judgments[3]]
    assert rows[0]["chosen"][0]["content"] == "Blue." and rows[0]["metadata"]["choice"] == "a"
    with_ties = export(client, admin_token, aggregate="majority", include_ties="true")
    assert {r["metadata"]["comparison_id"]: r["metadata"]["choice"] for r in with_ties}[
        world.comparisons["c5"]
    ] == "tie"


def test_inactive_and_excluded_annotators_are_left_out_unless_asked(client, db, world, admin_token):
    with db.session() as s:
        s.execute(update(User).where(User.id == world.users["carol"]).values(is_active=False))
        s.execute(update(User).where(User.id == world.users["bob"]).values(excluded_from_training=True))
    assert judgment_ids(export(client, admin_token)) == [[world.judgments[0]], [world.judgments[2]]]
    everyone = export(client, admin_token, include_inactive_annotators="true")
    assert len(everyone) == 6


def test_split_is_by_prompt_stable_and_matches_training_heldout(client, db, world, admin_token):
    everything = export(client, admin_token, format="raw", test_fraction=0.5)
    train = export(client, admin_token, format="raw", test_fraction=0.5, split="train")
    test = export(client, admin_token, format="raw", test_fraction=0.5, split="test")
    assert sorted(r["judgment_id"] for r in train + test) == sorted(r["judgment_id"] for r in everything)
    assert export(client, admin_token, format="raw", test_fraction=0.5, split="test") == test
    with db.session() as s:
        hashes = {p.id: p.content_hash for p in s.query(Prompt)}
    for row in everything:
        prompt_id = row["metadata"]["prompt_id"]
        heldout = training_snapshot.split_of(hashes[prompt_id], 0.5) == "eval"
        assert row["metadata"]["split"] == ("test" if heldout else "train")
    assert {r["metadata"]["split"] for r in export(client, admin_token, format="raw", test_fraction=1)} == {"test"}


def test_split_of_only_moves_prompts_into_test_as_the_fraction_grows():
    hashes = [f"{i:064x}" for i in range(300)]
    small = {h for h in hashes if split_of(content_hash=h, test_fraction=0.1) == "test"}
    large = {h for h in hashes if split_of(content_hash=h, test_fraction=0.3) == "test"}
    assert small < large and 10 < len(small) < 60


def test_standard_style_and_hh_are_strings(client, world, admin_token):
    standard = export(client, admin_token, style="standard")
    assert (standard[0]["prompt"], standard[0]["chosen"], standard[0]["rejected"]) == (
        "Name a colour.",
        "Blue.",
        "Green.",
    )
    assert standard[4]["prompt"] == (
        "system: Be brief.\n\nuser: Tell a story.\n\nassistant: Once upon a time.\n\nuser: And then?"
    )
    hh = export(client, admin_token, format="hh")
    assert hh[0]["chosen"] == "\n\nHuman: Name a colour.\n\nAssistant: Blue."
    assert hh[0]["rejected"] == "\n\nHuman: Name a colour.\n\nAssistant: Green."
    assert hh[4]["chosen"] == (
        "\n\nSystem: Be brief.\n\nHuman: Tell a story.\n\nAssistant: Once upon a time."
        "\n\nHuman: And then?\n\nAssistant: They lived."
    )
    assert set(hh[0]) == {"chosen", "rejected", "metadata"}


def test_kto_rows_are_unpaired_winner_true_loser_false(client, world, admin_token):
    rows = export(client, admin_token, format="kto")
    assert len(rows) == 12  # two per a/b judgment
    first, second = rows[0], rows[1]
    assert (first["completion"], first["label"]) == ([{"role": "assistant", "content": "Blue."}], True)
    assert (second["completion"], second["label"]) == ([{"role": "assistant", "content": "Green."}], False)
    assert first["metadata"]["policy_version"] == 1 and second["metadata"]["policy_version"] == 2
    with_ties = export(client, admin_token, format="kto", include_ties="true")
    both_bad = [r for r in with_ties if r["metadata"]["choice"] == "both_bad"]
    assert len(with_ties) == 14 and [r["label"] for r in both_bad] == [False, False]  # a tie gives no rows


def test_raw_keeps_every_judgment_arena_style(client, world, admin_token, settings):
    rows = export(client, admin_token, format="raw")
    assert [r["judgment_id"] for r in rows] == world.judgments
    assert [r["winner"] for r in rows] == [
        "model_a",
        "model_a",
        "model_b",
        "model_b",
        "tie",
        "tie (bothbad)",
        "model_a",
        "model_b",
    ]
    tie = rows[4]
    assert (tie["model_a"], tie["model_b"], tie["turn"], tie["anony"]) == ("v2", "v3", 1, True)
    assert tie["conversation_a"] == [
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "content": "1 2 3"},
    ]
    assert rows[5]["metadata"]["is_gold"] and rows[5]["metadata"]["gold_choice"] == "a"
    assert rows[6]["turn"] == 2
    listed = client.get("/api/v1/judgments", params={"limit": 1000}, headers=admin_token).json()["items"]
    assert [r["judge"] for r in rows] == [i["annotator"] for i in listed]


@pytest.mark.parametrize(
    "params",
    [
        {"format": "trl"},
        {"format": "trl", "style": "standard", "aggregate": "majority"},
        {"format": "hh", "include_ties": "true"},
        {"format": "raw"},
        {"format": "kto", "style": "standard"},
    ],
)
def test_parquet_holds_the_same_rows_as_jsonl(client, world, admin_token, params):
    jsonl = export(client, admin_token, **params)
    response = client.get(URL, params={**params, "file_format": "parquet"}, headers=admin_token)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(response.content)).to_pylist() == jsonl


def test_download_headers(client, world, admin_token):
    response = client.get(URL, params={"format": "hh", "split": "train"}, headers=admin_token)
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"].startswith('attachment; filename="prefloop-hh-train-')
    assert response.headers["content-disposition"].endswith('.jsonl"')
    assert response.headers["x-prefloop-max-judgment-id"] == str(world.judgments[-1])


@pytest.mark.parametrize(
    "params",
    [
        {"format": "trl"},
        {"format": "raw"},
        {"format": "kto", "include_ties": "true"},
        {"format": "trl", "aggregate": "majority", "include_ties": "true"},
    ],
)
def test_small_batches_give_the_same_export(client, app, world, admin_token, params, monkeypatch):
    whole = client.get(URL, params=params, headers=admin_token).text
    for batch_size in (1, 2, 3):
        app.state.settings.EXPORT_BATCH_SIZE = batch_size
        assert client.get(URL, params=params, headers=admin_token).text == whole, batch_size
    # Pages are built and encoded in slices: a comparison's judgments may straddle two of them.
    app.state.settings.EXPORT_BATCH_SIZE = 5
    for slice_rows in (1, 2):
        monkeypatch.setattr(formats.JsonlEncoder, "slice_rows", slice_rows)
        assert client.get(URL, params=params, headers=admin_token).text == whole, slice_rows


def test_empty_export_is_an_empty_file(client, admin_token):
    assert client.get(URL, headers=admin_token).text == ""
    parquet = client.get(URL, params={"file_format": "parquet"}, headers=admin_token)
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "csv"}, "format"),
        ({"file_format": "xlsx"}, "file_format"),
        ({"aggregate": "mean"}, "aggregate"),
        ({"format": "raw", "aggregate": "majority"}, "aggregate"),
        ({"test_fraction": "1.5"}, "test_fraction"),
        ({"split": "test", "test_fraction": "0"}, "test_fraction"),
        ({"split": "validation"}, "split"),
        ({"include_ties": "maybe"}, "include_ties"),
        ({"shuffle": "true"}, "shuffle"),
        ({"round": "0"}, "round"),
    ],
)
def test_bad_options_are_422_naming_the_field(client, world, admin_token, params, field):
    response = client.get(URL, params=params, headers=admin_token)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["query", field]
