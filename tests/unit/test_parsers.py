"""Parsers on tiny fixtures written by the tests (never on downloads)."""

import json

import pytest

from aine_lib.data.newsgroups import binary_task, parse_orange_tab
from aine_lib.data.sentiment import binarise_ratings, parse_rt_snippets, parse_uci_json
from aine_lib.data.text import ParseError


def test_orange_tab_skips_header_and_empty_rows(tmp_path):
    path = tmp_path / "x.tab"
    path.write_text("Category\tText\nd\tstring\nclass\t\n\n"
                    "rec.sport.hockey\tgo leafs go\n"
                    "rec.sport.baseball\tthe yankees won\n"
                    "sci.space\tlaunch window\n"
                    "rec.sport.hockey\t   \n")
    df = parse_orange_tab(path)
    assert list(df["category"]) == ["rec.sport.hockey", "rec.sport.baseball", "sci.space"]
    task = binary_task(df)
    assert list(task["label"]) == [1, 0] and list(task["text"]) == ["go leafs go", "the yankees won"]


def test_orange_tab_rejects_wrong_header(tmp_path):
    path = tmp_path / "x.tab"
    path.write_text("label\ttext\nfoo\tbar\n")
    with pytest.raises(ParseError, match="Orange header"):
        parse_orange_tab(path)


def test_rt_snippets_crlf_no_final_newline_and_zero_dropped(tmp_path):
    path = tmp_path / "rt.txt"
    path.write_bytes("1\t2.26666666667\tThe Rock is destined\r\n"
                     "2\t-0.6\tEffective but too tepid biopic\r\n"
                     "3\t0\tNeither here nor there\r\n"
                     "4\t3.9\tcafé au lait, tab\tinside".encode("utf-8"))
    df = parse_rt_snippets(path)
    assert list(df["id"]) == [1, 2, 3, 4]
    assert df.loc[3, "text"] == "café au lait, tab\tinside"  # only the first two tabs split
    binary = binarise_ratings(df)
    assert list(binary["id"]) == [1, 2, 4] and list(binary["label"]) == [1, 0, 1]


def test_rt_snippets_bad_rating_names_the_line(tmp_path):
    path = tmp_path / "rt.txt"
    path.write_text("1\tnot-a-number\ttext\r\n")
    with pytest.raises(ParseError, match=r"rt.txt:1"):
        parse_rt_snippets(path)


def test_uci_json_drops_empty_null_duplicates_and_conflicts(tmp_path):
    files = {
        "imdb": [{"text": "Great film.  ", "class": 1}, {"text": "", "class": None},
                 {"text": "Great film.", "class": 1}, {"text": "Meh.", "class": 0}],
        "amazon": [{"text": "Meh.", "class": 1}, {"text": "Broke in a day", "class": 0}],
        "yelp": [{"text": "Tasty", "class": 1}],
    }
    paths = {}
    for domain, items in files.items():
        paths[domain] = tmp_path / f"{domain}.json"
        paths[domain].write_text(json.dumps(items))
    df = parse_uci_json(paths)
    assert list(df["text"]) == ["Great film.", "Broke in a day", "Tasty"]  # "Meh." had both labels
    assert list(df["label"]) == [1, 0, 1] and list(df["domain"]) == ["imdb", "amazon", "yelp"]


def test_uci_json_rejects_bad_class(tmp_path):
    path = tmp_path / "imdb.json"
    path.write_text(json.dumps([{"text": "x", "class": 2}]))
    with pytest.raises(ParseError, match="class must be 0, 1 or null"):
        parse_uci_json({"imdb": path})
