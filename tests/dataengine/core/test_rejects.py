"""One reject vocabulary: a keyword-only record, one sink, one error policy."""

import pytest

from dataengine.core.rejects import Reject, RejectSink, error_code


def test_reject_is_keyword_only_with_one_shape():
    with pytest.raises(TypeError):
        Reject("k", "src", "code", "why")  # positional arguments mixed up the fields before
    reject = Reject(key="k", source="src", code="missing_file", reason="no such file")
    assert reject.as_dict() == {"key": "k", "source": "src", "code": "missing_file", "reason": "no such file"}


def test_guard_turns_an_exception_into_a_reject_and_counts_it():
    sink = RejectSink()
    with sink.guard(key="a", source="a.png"):
        raise OSError("cannot identify image file")
    with sink.guard(key="b", source="b.png"):
        pass
    sink.add(key="c", source="c.json", code="schema", reason="json.width: -1 is less than 1")
    assert [r.key for r in sink.rejects] == ["a", "c"] and len(sink) == 2
    assert sink.rejects[0].code == "error.OSError" and sink.rejects[0].reason == "OSError: cannot identify image file"
    assert dict(sink.counts) == {"error.OSError": 1, "schema": 1}
    assert error_code(ValueError()) == "error.ValueError"


def test_raise_policy_propagates_and_a_wrong_policy_says_what_is_allowed():
    sink = RejectSink(policy="raise")
    with pytest.raises(KeyError), sink.guard(key="a", source="a"):
        raise KeyError("x")
    assert sink.rejects == []
    with pytest.raises(ValueError, match="skip, raise"):
        RejectSink(policy="ignore")
