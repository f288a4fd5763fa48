"""Prompt import: JSONL and CSV, chat normalization, de-duplication, bad lines with their numbers."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.comparisons.models import Comparison, ComparisonStatus
from app.core.errors import NotFound, Unprocessable
from app.prompts import service
from app.prompts.models import Prompt
from app.prompts.schemas import PromptIn
from tests.factories import make_comparison

MAX = 20000


def jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def import_text(db, content, fmt="jsonl", skip_bad_lines=False, source="file.jsonl", max_chars=MAX):
    with db.session() as session:
        return service.import_text(
            db=session, content=content, fmt=fmt, source=source, skip_bad_lines=skip_bad_lines, max_chars=max_chars
        )


def stored(db) -> list[Prompt]:
    with db.session() as session:
        return list(session.scalars(select(Prompt).order_by(Prompt.id)))


def test_jsonl_text_and_chat_prompts_are_stored_as_messages(db):
    report = import_text(
        db,
        jsonl(
            {"prompt": "  Tell me about owls.  ", "tags": ["animal", " animal ", ""]},
            {
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."}],
                "source": "vendor-x",
            },
        ),
    )
    assert (report.created, report.duplicates, report.errors) == (2, 0, [])
    owls, colors = stored(db)
    assert owls.messages == [{"role": "user", "content": "Tell me about owls."}]
    assert owls.text == "Tell me about owls." and owls.tags == ["animal"] and owls.source == "file.jsonl"
    assert colors.messages[0] == {"role": "system", "content": "Be brief."}
    assert colors.text == "system: Be brief.\n\nuser: Name a color."
    assert colors.source == "vendor-x" and colors.is_active and len(colors.content_hash) == 64


def test_csv_with_tags_quoted_newlines_and_a_bom(db):
    content = '\ufeffPrompt,Tags,extra\n"Write a poem,\nplease",poem|short,x\nSay hi,,y\n'
    report = import_text(db, content, fmt="csv")
    assert (report.created, report.duplicates) == (2, 0)
    poem, hi = stored(db)
    assert poem.messages == [{"role": "user", "content": "Write a poem,\nplease"}]
    assert poem.tags == ["poem", "short"]
    assert hi.tags == []


def test_duplicates_in_the_file_and_in_the_database_are_counted_not_stored(db):
    first = import_text(db, jsonl({"prompt": "A"}, {"prompt": "B"}, {"prompt": "A", "tags": ["other"]}))
    assert (first.created, first.duplicates) == (2, 1)
    # The same prompt as text and as a one-message chat, differently spaced or line-ended, is the same.
    again = import_text(db, jsonl({"messages": [{"role": "user", "content": "A "}]}, {"prompt": "C"}))
    assert (again.created, again.duplicates) == (1, 1)
    crlf = import_text(db, 'prompt\n"x\r\ny"\n', fmt="csv")
    lf = import_text(db, jsonl({"prompt": "x\ny"}))
    assert (crlf.created, lf.created, lf.duplicates) == (1, 0, 1)
    assert [p.text for p in stored(db)] == ["A", "B", "C", "x\ny"]


def test_bad_lines_refuse_the_whole_file_with_line_numbers(db):
    content = jsonl(
        {"prompt": "fine"},
        "{not json",
        "",
        {"prompt": "x", "messages": [{"role": "user", "content": "y"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "robot", "content": "beep"}]},
        ["a list"],
        {"prompt": "   "},
        {"prompt": "ok", "tags": "not-a-list"},
        {"prompt": "ok", "colour": "red"},
        {"messages": [{"role": "user", "content": "nul\u0000"}]},
        {"prompt": "ok", "tags": ["a\u0000"]},
    )
    with pytest.raises(Unprocessable) as caught:
        import_text(db, content)
    message = caught.value.msg
    assert message.startswith("10 bad lines in the file: line 2: not valid JSON")
    for expected in (
        "line 4: give either 'prompt' (text) or 'messages'",
        "line 5: 'messages' must end with a user message",
        "line 6: messages.0.role: Input should be 'system', 'user' or 'assistant'",
        "line 7: expected one JSON object per line (JSONL), got list",
        "line 8: 'prompt' must not be blank",
        "line 9: tags: Input should be a valid list",
        "line 10: colour: Extra inputs are not permitted",
        "line 11: messages.0.content: must not contain NUL characters",
        "line 12: tags.0: must not contain NUL characters",
    ):
        assert expected in message, expected
    assert message.endswith("nothing was imported (skip bad lines to import the good ones).")
    assert caught.value.loc == ["file"]
    assert stored(db) == []


def test_skip_bad_lines_imports_the_good_ones_and_reports_the_rest(db):
    content = jsonl({"prompt": "good"}, "{broken", {"prompt": "also good"})
    report = import_text(db, content, skip_bad_lines=True)
    assert (report.created, report.duplicates) == (2, 0)
    assert [(e.line, e.message[:14]) for e in report.errors] == [(2, "not valid JSON")]
    assert [p.text for p in stored(db)] == ["good", "also good"]


def test_a_file_with_only_bad_lines_is_refused_even_when_skipping(db):
    with pytest.raises(Unprocessable, match=r"^1 bad line in the file: line 1: not valid JSON .*\.$"):
        import_text(db, "{oops\n", skip_bad_lines=True)


@pytest.mark.parametrize(
    "content,fmt", [("", "jsonl"), ("\n  \n", "jsonl"), ("", "csv"), ("prompt\n", "csv"), ("prompt\n,\n", "csv")]
)
def test_an_empty_file_is_refused(db, content, fmt):
    with pytest.raises(Unprocessable, match="^The file has no prompts.$"):
        import_text(db, content, fmt=fmt)


def test_csv_problems_are_reported_by_line(db):
    no_prompt = "line 1: the CSV header has no 'prompt' column \\(found: text, tags\\)"
    with pytest.raises(Unprocessable, match=no_prompt):
        import_text(db, "text,tags\nhello,a\n", fmt="csv")
    with pytest.raises(Unprocessable) as caught:
        import_text(db, 'prompt,tags\nok,a\n"multi\nline",b\ntoo,many,fields\n', fmt="csv")
    assert caught.value.msg.startswith("1 bad line in the file: line 5: has 3 fields, the header has 2")
    with pytest.raises(Unprocessable, match="line 3: unreadable CSV"):
        import_text(db, 'prompt\nok\n"unterminated\n', fmt="csv")


def test_too_long_prompts_are_bad_lines(db):
    with pytest.raises(Unprocessable, match="line 2: the prompt has 11 characters; at most 10 are allowed"):
        import_text(db, jsonl({"prompt": "short"}, {"prompt": "x" * 11}), max_chars=10)
    with db.session() as session, pytest.raises(Unprocessable, match="prompt has 11 characters") as caught:
        service.import_prompts(db=session, rows=[PromptIn(prompt="x" * 11)], source="api", max_chars=10)
    assert caught.value.loc == ["rows", 0]


def test_unknown_format_and_undecodable_bytes(db):
    with pytest.raises(Unprocessable, match="Unknown prompt file format 'xml'; use jsonl or csv."):
        import_text(db, "<x/>", fmt="xml")
    with pytest.raises(Unprocessable, match=r"The file is not UTF-8 text \(invalid byte at offset 3\)."):
        service.decode_upload(b"abc\xff")
    assert service.decode_upload("\ufeffprompt\n".encode()) == "prompt\n"


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("p.jsonl", "prompt\n", "jsonl"),
        ("p.CSV", "{}", "csv"),
        ("p.txt", ' {"prompt": 1}', "jsonl"),
        (None, "prompt\nhi", "csv"),
        ("upload", "\ufeff[1]", "jsonl"),
    ],
)
def test_format_detection(name, content, expected):
    assert service.detect_format(name, content) == expected


def test_list_search_filter_and_page(db):
    import_text(
        db,
        jsonl(
            {"prompt": "Owls hunt at night", "tags": ["animal"]},
            {"prompt": "100% juice_box", "tags": ["food"]},
            {"prompt": "Tell me about OWLS", "tags": ["animal", "caps"]},
        ),
    )
    with db.session() as session:
        items, total = service.list_(db=session, q="owls")
        assert total == 2 and [p.text for p in items] == ["Tell me about OWLS", "Owls hunt at night"]
        assert [p.text for p in service.list_(db=session, q="100%")[0]] == ["100% juice_box"]
        assert service.list_(db=session, q="0%_")[1] == 0  # wildcards in the query are literal
        assert [p.text for p in service.list_(db=session, tag="caps")[0]] == ["Tell me about OWLS"]
        assert service.list_(db=session, tag="anim")[1] == 0
        assert service.list_(db=session, source="file.jsonl")[1] == 3
        page, total = service.list_(db=session, offset=1, limit=1)
        assert total == 3 and [p.text for p in page] == ["100% juice_box"]


def test_deactivate_retires_ready_pairs_and_reactivate(db, active_policy):
    import_text(db, jsonl({"prompt": "one"}, {"prompt": "two"}))
    one, two = stored(db)
    ready_one, ready_two = (
        make_comparison(db, prompt_id=one.id, version_a_id=active_policy),
        make_comparison(db, prompt_id=two.id, version_a_id=active_policy),
    )
    done = make_comparison(
        db, prompt_id=one.id, version_a_id=active_policy, status=ComparisonStatus.completed, judgment_count=1
    )
    with db.session() as session:
        assert not service.deactivate(db=session, prompt_id=one.id).is_active
        assert service.count_active(db=session) == 1
        assert service.list_(db=session, active=False)[0][0].id == one.id
    with db.session() as session:
        status = {c.id: c.status for c in session.scalars(select(Comparison))}
    assert status == {
        ready_one: ComparisonStatus.retired,
        ready_two: ComparisonStatus.ready,
        done: ComparisonStatus.completed,
    }
    with db.session() as session:
        assert service.reactivate(db=session, prompt_id=one.id).is_active
        with pytest.raises(NotFound, match="Prompt 999 does not exist."):
            service.deactivate(db=session, prompt_id=999)
