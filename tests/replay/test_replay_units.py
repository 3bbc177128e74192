"""The replay's pure parts: leaves, tolerances, --fail-on syntax, and quantiles with implicit zeros."""
from __future__ import annotations

import numpy
import pytest

from modelplatform.replay.compare import Comparer, Tolerance, leaves, parse_tolerances
from modelplatform.replay.gates import parse_fail_on
from modelplatform.replay.summary import combine, shifted_fraction


def test_leaves_are_named_by_json_pointer() -> None:
    assert leaves({"a": {"b/c": 1, "d": [True, {"e~": None}]}, "f": {}, "g": []}) == {
        "/a/b~1c": 1, "/a/d/0": True, "/a/d/1/e~0": None, "/f": {}, "/g": []}
    assert leaves(3.5) == {"": 3.5}


def test_numbers_compare_by_value_and_true_is_not_one() -> None:
    comparer = Comparer()
    same = comparer.compare("ok", {"p": 405, "flag": True}, None, "ok", {"p": 405.0, "flag": True}, None)
    differs = comparer.compare("ok", {"flag": True}, None, "ok", {"flag": 1}, None)
    assert not same.changed and same.diffs == {}
    assert differs.changed and differs.diffs == {"/flag": {"baseline": True, "candidate": 1}}


def test_relative_difference_is_undefined_from_zero() -> None:
    comparer = Comparer(parse_tolerances("1%"))
    result = comparer.compare("ok", {"x": 0}, None, "ok", {"x": 2}, None)
    assert result.diffs["/x"] == {"baseline": 0, "candidate": 2, "abs": 2.0, "rel": None}
    stats = comparer.leaves["/x"]
    assert (stats.rel_defined, stats.beyond) == (0, 1)  # undefined relative change is beyond any % tolerance


def test_rejection_codes_are_compared_but_error_messages_are_not() -> None:
    comparer = Comparer()
    assert comparer.compare("rejected", None, {"code": "a"}, "rejected", None, {"code": "b"}, ).changed
    assert not comparer.compare("error", None, {"message": "x"}, "error", None, {"message": "y"}).changed


def test_tolerances_parse() -> None:
    parsed = parse_tolerances("0.01,/premium=0.5%")
    assert parsed.default == Tolerance(0.01) and parsed.for_leaf("/premium") == Tolerance(0.005, True)
    assert str(parsed) == "0.01,/premium=0.5%"
    with pytest.raises(ValueError, match="tolerance 'premium=1'"):
        parse_tolerances("premium=1")


@pytest.mark.parametrize("text", ["changed", "changed>", "bogus>1", "ok->nope>1", "/premium>1", "/premium:avg>1",
                                  "/premium:max>1%", "changed<1"])
def test_bad_fail_on_conditions_are_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="--fail-on"):
        parse_fail_on(text)


def test_fail_on_parses_every_form() -> None:
    parsed = parse_fail_on("changed>1%, error>=0 ,ok->rejected>3,/a/b:rel_p95>5%,/a:p95>0.5")
    assert [(c.metric, c.op, c.value, c.share) for c in parsed] == [
        ("changed", ">", 0.01, True), ("error", ">=", 0.0, False), ("ok->rejected", ">", 3.0, False),
        ("/a/b:rel_p95", ">", 0.05, True), ("/a:p95", ">", 0.5, False)]
    assert (parsed[3].pointer, parsed[3].stat) == ("/a/b", "rel_p95")


@pytest.mark.parametrize("seed", range(20))
def test_quantiles_from_the_positive_values_equal_those_of_all_values(seed: int) -> None:
    rng = numpy.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    k = int(rng.integers(0, n + 1))
    positive = numpy.sort(rng.uniform(0.01, 100, size=k))
    values = numpy.concatenate([numpy.zeros(n - k), positive])
    for p in (0.0, 0.5, 0.95, 1.0):
        fraction = shifted_fraction(p, n, k)
        from_positive = None if fraction is None else float(numpy.quantile(positive, fraction))
        got = combine(p, n, k, float(positive[0]) if k else None, from_positive)
        assert got == pytest.approx(float(numpy.quantile(values, p)), abs=1e-9), (n, k, p)


def test_the_child_records_model_failures_like_the_data_plane() -> None:
    from modelplatform import dataplane
    from modelplatform.replay import child

    assert child.failures is dataplane.failures  # one module writes the error column for both


def test_outputs_of_different_shapes_compare_leaf_by_leaf() -> None:
    comparer = Comparer()
    result = comparer.compare("ok", {"x": {"a": 1}, "l": [1, 2, 3], "k/~": 1, "m": [1]},
                              None, "ok", {"x": 5, "l": [1, 2], "k/~": 1, "m": {"0": 1}}, None)
    assert result.diffs == {"/x/a": {"baseline": 1}, "/x": {"candidate": 5}, "/l/2": {"baseline": 3}}
    assert comparer.leaves["/k~1~0"].compared == 1 and comparer.leaves["/m/0"].compared == 1
    assert (comparer.leaves["/x/a"].removed, comparer.leaves["/x"].added) == (1, 1)
