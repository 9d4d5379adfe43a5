"""
test_jsonview.py - tp.call_view: an export's tables reach the caller as JSON
views, its result encoded once in the callee (lua/jsonview.h).

What a caller reads through a view is what a copy (tp.call) gives: every
scalar (integers exact past 2^53, floats, booleans, null, CJK and escaped
text), nested objects and arrays, integer keys of a sparse table, keys that
need escaping; # and pairs; a view cannot change, and tp.json.decode gives
tables that can. An answer, tp.json.encode, a job's payload and an event's
data carry the view's text as it is, and a job's or event's handler gets
them back exactly; another plugin receives a view, as an argument or as a
result of tp.call, as tables. Several results, a result JSON
cannot hold, a tp.fail and an unknown plugin behave as with tp.call.
tp.json.view makes a view of a plugin's own table, encoded when it is made.

Plugins: tests/e2e/plugins/viewer (the caller), viewed (the callee), viewend
(one further down). The tenant runs on a manual clock.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, manual_tenant, advance, tasks, run  # noqa: E402

T = manual_tenant("view", plugins={"viewer": {}, "viewed": {}, "viewend": {}})
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="jsonview").start()
    return H


def get(path):
    status, _, body = host().get("/v1/view/viewer/" + path)
    assert status == 200, (path, status, body)
    return body


def order():
    """The callee's order, as tp.call copies it and the answer encodes it."""
    return get("read")["copy"]


def test_a_view_reads_every_value_a_copy_holds():
    b = get("read")
    copy = b["copy"]
    assert copy["big"] == 9007199254740993 and copy["empty"] == [] and copy["obj"] == {}, copy
    assert b["type"] == "userdata" and b["meta"] == "tp.json.view", b
    assert (b["id"], b["id_type"], b["user"]) == (42, "integer", "u-1"), b
    assert b["title"] == "茶 · 乌龙" and b["note"] == 'say "hi" \\ \n\t\x01 end', b
    assert (b["ratio"], b["ratio_type"]) == (0.25, "float"), b
    assert b["big"] == 9007199254740993 and b["big_exact"] is True and b["neg"] == -7, b
    assert b["paid"] is False and b["held"] is True and b["nothing_is_null"] is True, b
    assert b["missing_is_nil"] is True and b["float_key_is_nil"] is True, b
    # nested arrays and objects are views too
    assert (b["lines_type"], b["lines_len"], b["first_sku"], b["second_qty"]) == (
        "userdata", 2, "tea-1", 1), b
    assert b["third_is_nil"] and b["zeroth_is_nil"] and b["name_on_array_is_nil"], b
    # keys as a table takes them: "1" is not 1, 2.0 is 2
    assert b["digit_string_on_array_is_nil"] is True, b
    assert (b["float_index"], b["float_key"]) == ("tea-2", "five"), b
    assert (b["tags_len"], b["empty_len"], b["obj_len"], b["object_len"]) == (0, 0, 0, 0), b
    # a sparse table's integer keys, and keys JSON escapes
    assert (b["sparse_5"], b["sparse_7"]) == ("five", "seven"), b
    assert (b["quoted"], b["cjk"]) == ("q", "值"), b
    assert b["keys"] == b["copy_keys"] and len(b["keys"]) == 17, b["keys"]


def test_a_view_cannot_change_and_its_decoding_can():
    b = get("read")
    assert b["set_refused"] is True and "cannot change" in b["set_error"], b
    assert (b["decoded_id"], b["still"]) == (43, 42), b
    # decoded exactly: past 2^53, [] stays an array; a sparse table's keys are JSON's strings
    assert b["decoded_big_exact"] is True and b["decoded_empty"] == "[]", b
    assert b["decoded_sparse_key"] == "string", b
    assert b["bind_refused"] is True, b


def test_answers_and_encodings_carry_the_views_text():
    b = get("read")
    copy = b["copy"]
    assert b["view"] == copy, (b["view"], copy)
    assert b["nested"] == copy["lines"], b
    assert json.loads(b["text"]) == copy, b["text"]
    assert json.loads(b["encoded"]) == {"inner": copy}, b["encoded"]
    status, _, body = host().get("/v1/view/viewer/answer")
    assert status == 201 and body == copy, (status, body)


def test_tp_json_view_encodes_a_plugins_own_table_once():
    b = get("own")
    assert (b["type"], b["same"], b["id"], b["tags"]) == ("userdata", True, 7, 2), b
    assert b["v"] == {"id": 7, "tags": ["a", "b"], "empty": []}, b
    assert "table expected" in b["bad"] and "cannot encode a function" in b["fn"], b


def test_several_results_keep_their_kinds():
    assert get("several") == {"a": 7, "a_type": "integer", "b_type": "userdata", "b": {"a": 1},
                              "c": "s"}


def test_errors_are_those_of_tp_call():
    b = get("errors")
    assert "cannot encode a function" in b["nonplain"], b
    assert "tp.call_view: no plugin 'nobody'" in b["nobody"], b
    assert b["fail"] == {"status": 409, "code": "not_now", "details": {"retry": 3}}, b


def test_another_plugin_receives_a_view_as_tables():
    b = get("pass")
    copy = order()
    assert b["seen"] == {"type": "table", "id": 42, "lines": 2, "title": "茶 · 乌龙",
                         "meta": True}, b["seen"]
    assert b["again_type"] == "userdata" and b["again"] == copy, b
    assert b["plain_type"] == "table" and b["plain"] == copy, b
    # a view the callee holds and returns: tables to tp.call, a view to tp.call_view
    assert b["relayed_type"] == "table" and b["relayed"] == {"x": 1, "y": [2, 3]}, b
    assert b["relayed_view_type"] == "userdata" and b["relayed_view"] == {"x": 1, "y": [2, 3]}, b


def test_a_jobs_payload_and_an_events_data_hold_the_views_text():
    h = host()
    copy = order()
    status, _, body = h.post("/v1/view/viewer/later", {})
    assert status == 200, body
    advance(h, T, seconds=0)
    for kind in ("jobs", "events"):
        listing = tasks(h, T, kind)
        assert listing["pending"] == 0 and listing["dead"] == 0, listing
    got = get("got")["items"]
    assert sorted(g["kind"] for g in got) == ["event", "job"], got
    # the handlers get the data back exactly: past 2^53, [] an array
    for g in got:
        assert json.loads(g["body"]) == {"order": copy}, g


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
