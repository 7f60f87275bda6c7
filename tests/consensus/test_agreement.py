"""Categorical agreement: every figure equals the reference library's on random tables."""

from __future__ import annotations

import math
import warnings

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from reviews.consensus import (
    AgreementError,
    EmptyTableError,
    IncompleteCaseError,
    SingleCategoryError,
    TooFewReadersError,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
)

SEEDS = [0, 1, 2, 3, 4, 5]
TOLERANCE = 1e-9
ANSWERS = np.array(["absent", "benign", "malignant", "uncertain"])


def _random_codes(seed: int, *, readers: int, cases: int = 60, categories: int = 4) -> np.ndarray:
    """Integer answers 0..categories-1 with agreement above chance: each reader copies a
    case's true answer with probability 0.6, else answers at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(categories, size=cases)
    guesses = rng.integers(categories, size=(cases, readers))
    copies = rng.random((cases, readers)) < 0.6
    return np.where(copies, truth[:, None], guesses)


def _with_gaps(codes: np.ndarray, seed: int, fraction: float = 0.2) -> np.ndarray:
    """The table as floats with a random fraction of reads missing (NaN)."""
    rng = np.random.default_rng(seed + 1000)
    table = codes.astype(float)
    table[rng.random(codes.shape) < fraction] = np.nan
    return table


# --- Cohen's kappa against sklearn.metrics.cohen_kappa_score ---------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_kappa_equals_sklearn_on_string_answers(seed):
    table = ANSWERS[_random_codes(seed, readers=2)]
    expected = cohen_kappa_score(table[:, 0], table[:, 1])
    assert cohen_kappa(table) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_cohen_kappa_equals_sklearn(seed, weights):
    table = _random_codes(seed, readers=2, categories=5) + 1  # a 1..5 scale
    expected = cohen_kappa_score(table[:, 0], table[:, 1], weights=weights, labels=[1, 2, 3, 4, 5])
    assert cohen_kappa(table, weights=weights, categories=[1, 2, 3, 4, 5]) == pytest.approx(
        expected, abs=TOLERANCE
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_kappa_leaves_out_cases_either_reader_has_not_read(seed):
    table = _with_gaps(_random_codes(seed, readers=2), seed)
    both = ~np.isnan(table).any(axis=1)
    expected = cohen_kappa_score(table[both, 0], table[both, 1])
    assert cohen_kappa(table) == pytest.approx(expected, abs=TOLERANCE)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abc")), min_size=1, max_size=30))
def test_cohen_kappa_equals_sklearn_on_any_small_table(pairs):
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about one-label tables
        expected = cohen_kappa_score(first, second)
    got = cohen_kappa(pairs)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=TOLERANCE)


# --- Fleiss' kappa against statsmodels ----------------------------------------------------


def _category_counts(codes: np.ndarray, categories: int) -> np.ndarray:
    return np.stack([(codes == c).sum(axis=1) for c in range(categories)], axis=1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("readers", [2, 3, 7])
def test_fleiss_kappa_equals_statsmodels(seed, readers):
    codes = _random_codes(seed, readers=readers)
    expected = statsmodels_fleiss_kappa(_category_counts(codes, 4), method="fleiss")
    assert fleiss_kappa(ANSWERS[codes]) == pytest.approx(expected, abs=TOLERANCE)


def test_fleiss_kappa_refuses_a_case_without_every_read():
    table = [["a", "b", "a"], ["a", None, "a"], ["b", "b", "b"], ["a", "a", float("nan")]]
    with pytest.raises(IncompleteCaseError, match=r"cases 1, 3 lack reads"):
        fleiss_kappa(table)


# --- Krippendorff's alpha against krippendorff.alpha ---------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_with_gaps_equals_krippendorff(seed, level):
    table = _with_gaps(_random_codes(seed, readers=4, categories=5) + 1, seed)
    expected = krippendorff.alpha(reliability_data=table.T, level_of_measurement=level)
    assert krippendorff_alpha(table, level=level) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("seed", SEEDS)
def test_ordinal_alpha_follows_the_order_of_the_categories_given(seed):
    scale = ["none", "mild", "moderate", "severe"]  # not alphabetical
    codes = _random_codes(seed, readers=3)
    table = np.array(scale, dtype=object)[codes]
    table[np.random.default_rng(seed).random(codes.shape) < 0.15] = None
    reliability = np.where(table == None, "nan", table).astype(str).T  # noqa: E711
    expected = krippendorff.alpha(reliability, level_of_measurement="ordinal", value_domain=scale)
    got = krippendorff_alpha(table, level="ordinal", categories=scale)
    assert got == pytest.approx(expected, abs=TOLERANCE)
    assert got != pytest.approx(krippendorff_alpha(table, level="ordinal"), abs=1e-6)


def test_krippendorff_alpha_matches_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: nominal 0.743.
    readers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    table = list(zip(*readers, strict=True))
    assert krippendorff_alpha(table) == pytest.approx(0.743, abs=5e-4)


# --- Degenerate tables ---------------------------------------------------------------------

STATISTICS = [cohen_kappa, fleiss_kappa, krippendorff_alpha]


@pytest.mark.parametrize("statistic", STATISTICS)
def test_it_refuses_fewer_than_two_readers(statistic):
    with pytest.raises(TooFewReadersError, match="at least two readers"):
        statistic([["a"], ["b"], ["a"]])


@pytest.mark.parametrize("statistic", STATISTICS)
@pytest.mark.parametrize("table", [[], np.empty((0, 3)), [[None, None], [float("nan"), None]]])
def test_it_refuses_an_empty_table(statistic, table):
    with pytest.raises(EmptyTableError):
        statistic(table)


def test_cohen_kappa_refuses_three_readers_and_unpaired_reads():
    with pytest.raises(AgreementError, match="two readers; the table has 3"):
        cohen_kappa([["a", "b", "a"], ["b", "b", "a"]])
    with pytest.raises(EmptyTableError, match="read by both"):
        cohen_kappa([["a", None], [None, "b"]])


def test_one_category_gives_nan_for_the_kappas_as_their_libraries_do():
    table = [["present", "present", "present"]] * 5
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A single label was found")
        with pytest.warns(UndefinedMetricWarning):
            reference = cohen_kappa_score(["present"] * 5, ["present"] * 5)
    assert math.isnan(reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert math.isnan(statsmodels_fleiss_kappa(np.array([[3]] * 5)))
    assert math.isnan(cohen_kappa([row[:2] for row in table]))
    assert math.isnan(fleiss_kappa(table))


def test_one_category_raises_for_alpha_as_krippendorff_does():
    table = [["present", "present", None], ["present", "present", "present"], [None, None, "absent"]]
    with pytest.raises(ValueError, match="more than one value"):
        krippendorff.alpha([["present"] * 3] * 2, level_of_measurement="nominal")
    # "absent" is never pairable (one read of its case), so the pairable reads hold one category.
    with pytest.raises(SingleCategoryError, match="one category"):
        krippendorff_alpha(table)


def test_answers_outside_the_categories_given_are_refused():
    with pytest.raises(AgreementError, match="outside the categories"):
        cohen_kappa([["a", "b"], ["a", "c"]], categories=["a", "b"])


def test_interval_alpha_refuses_words_and_mixed_types_need_categories():
    with pytest.raises(AgreementError, match="numeric answers"):
        krippendorff_alpha([["a", "b"], ["b", "b"]], level="interval")
    with pytest.raises(AgreementError, match="mixed types"):
        krippendorff_alpha([["a", 1], [2, "b"]])
    assert krippendorff_alpha([["a", 1], [1, "a"], ["a", "a"]], categories=["a", 1]) < 0


def test_every_refusal_is_a_value_error():
    for error in (TooFewReadersError, EmptyTableError, SingleCategoryError, IncompleteCaseError):
        assert issubclass(error, AgreementError)
    assert issubclass(AgreementError, ValueError)
