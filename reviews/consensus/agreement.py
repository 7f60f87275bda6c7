"""Agreement between readers on categorical answers: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha.

Every function takes a table of cases x readers (one row per case, one column per reader; any
array-like of hashable answers). A missing read is `None` or NaN. Categories are the distinct
answers in the table, sorted, unless `categories` gives them (in order, for weighted or ordinal
statistics; an answer outside them is an error).

The figures come from the reference libraries: scikit-learn (Cohen), statsmodels (Fleiss),
krippendorff (alpha). Degenerate tables raise an `AgreementError` (a ValueError) saying what is
wrong, except where the library defines the answer as NaN: see each function.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import krippendorff
import numpy as np
import numpy.typing as npt
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

Level = Literal["nominal", "ordinal", "interval", "ratio"]
MISSING = -1


class AgreementError(ValueError):
    """The table cannot give this statistic; the message says why."""


class TooFewReadersError(AgreementError):
    """Fewer than two readers (columns)."""


class EmptyTableError(AgreementError):
    """No case (or no pair of reads) to compare."""


class SingleCategoryError(AgreementError):
    """Every comparable read gave the same answer, so chance agreement is total."""


class IncompleteCaseError(AgreementError):
    """A case lacks a read where the statistic needs every reader on every case."""


@dataclass(frozen=True)
class _Coded:
    codes: npt.NDArray[np.intp]  # cases x readers; index into categories, MISSING where not read
    categories: tuple[Hashable, ...]


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _scalar(value: object) -> Hashable:
    return value.item() if isinstance(value, np.generic) else value


def _domain(present: set[Hashable], categories: Sequence[Hashable] | None) -> tuple[Hashable, ...]:
    if categories is None:
        try:
            return tuple(sorted(present))  # type: ignore[type-var]
        except TypeError as error:
            raise AgreementError("answers of mixed types cannot be ordered; pass categories=") from error
    domain = tuple(categories)
    unknown = present - set(domain)
    if unknown:
        raise AgreementError(f"answers outside the categories given: {sorted(map(repr, unknown))}")
    return domain


def _encode(table: npt.ArrayLike, categories: Sequence[Hashable] | None = None) -> _Coded:
    cells = np.asarray(table, dtype=object)
    if cells.size == 0:
        raise EmptyTableError("the table has no cases")
    if cells.ndim != 2:
        raise AgreementError(f"expected a cases x readers table, got an array of shape {cells.shape}")
    if cells.shape[1] < 2:
        raise TooFewReadersError(f"agreement needs at least two readers; the table has {cells.shape[1]}")
    missing = np.vectorize(_is_missing, otypes=[bool])(cells)
    if missing.all():
        raise EmptyTableError("the table holds no reads")
    present = {_scalar(value) for value in cells[~missing]}
    domain = _domain(present, categories)
    index = {category: code for code, category in enumerate(domain)}
    codes = np.full(cells.shape, MISSING, dtype=np.intp)
    for (case, reader), value in np.ndenumerate(cells):
        if not missing[case, reader]:
            codes[case, reader] = index[_scalar(value)]
    return _Coded(codes=codes, categories=domain)


def cohen_kappa(
    table: npt.ArrayLike,
    *,
    weights: Literal["linear", "quadratic"] | None = None,
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Cohen's kappa between the two readers of a cases x 2 table (sklearn's cohen_kappa_score).

    Cases that either reader has not read are left out. `weights` ("linear", "quadratic") gives
    the weighted kappa of an ordinal scale, with categories in the order of `categories` (pass
    them: the default order is sorted answers). Returns NaN when the compared reads all hold one
    category (sklearn's answer: kappa is 0/0). Raises TooFewReadersError for fewer than two
    columns, AgreementError for more than two, EmptyTableError when no case has both reads.
    """
    coded = _encode(table, categories)
    readers = coded.codes.shape[1]
    if readers != 2:
        raise AgreementError(
            f"Cohen's kappa compares two readers; the table has {readers} (use fleiss_kappa or "
            "krippendorff_alpha)"
        )
    both = (coded.codes != MISSING).all(axis=1)
    if not both.any():
        raise EmptyTableError("no case was read by both readers")
    first, second = coded.codes[both, 0], coded.codes[both, 1]
    if np.union1d(first, second).size == 1:
        return math.nan
    labels = np.arange(len(coded.categories))
    return float(cohen_kappa_score(first, second, labels=labels, weights=weights))


def fleiss_kappa(table: npt.ArrayLike, *, categories: Sequence[Hashable] | None = None) -> float:
    """Fleiss' kappa over all readers of a cases x readers table (statsmodels' fleiss_kappa).

    Fleiss' kappa needs the same number of reads on every case, so a missing read raises
    IncompleteCaseError naming the cases (drop them, or use krippendorff_alpha, which allows
    gaps). Returns NaN when every read holds one category (statsmodels' answer: 0/0). Raises
    TooFewReadersError for fewer than two readers and EmptyTableError for no cases.
    """
    coded = _encode(table, categories)
    incomplete = np.flatnonzero((coded.codes == MISSING).any(axis=1))
    if incomplete.size:
        shown = ", ".join(str(case) for case in incomplete[:10])
        more = f" and {incomplete.size - 10} more" if incomplete.size > 10 else ""
        raise IncompleteCaseError(
            f"Fleiss' kappa needs every reader on every case; cases {shown}{more} lack reads "
            "(drop them or use krippendorff_alpha)"
        )
    if np.unique(coded.codes).size == 1:
        return math.nan
    counts, _ = aggregate_raters(coded.codes, n_cat=len(coded.categories))
    return float(statsmodels_fleiss_kappa(counts, method="fleiss"))


def _value_domain(coded: _Coded, level: Level) -> npt.NDArray[np.float64]:
    if level in ("nominal", "ordinal"):
        # Nominal distances only compare codes; ordinal ones use ranks, which the codes are.
        return np.arange(len(coded.categories), dtype=np.float64)
    try:
        return np.array([float(c) for c in coded.categories])  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise AgreementError(f"{level} alpha needs numeric answers") from error


def krippendorff_alpha(
    table: npt.ArrayLike,
    *,
    level: Level = "nominal",
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Krippendorff's alpha of a cases x readers table with gaps allowed (krippendorff.alpha).

    Every case with at least two reads counts; cases with fewer are not pairable and add
    nothing. `level` is the scale: nominal (default), ordinal (in the order of `categories`),
    interval or ratio (numeric answers). Raises TooFewReadersError for fewer than two readers,
    EmptyTableError when no case has two reads, and SingleCategoryError when the pairable reads
    hold one category (krippendorff raises for a one-value domain).
    """
    coded = _encode(table, categories)
    pairable = (coded.codes != MISSING).sum(axis=1) >= 2
    if not pairable.any():
        raise EmptyTableError("no case has reads from two readers, so there is nothing to pair")
    pairable_codes = coded.codes[pairable]
    if np.unique(pairable_codes[pairable_codes != MISSING]).size == 1:
        raise SingleCategoryError("every pairable read holds one category; alpha is undefined")
    value_counts = np.stack(
        [(coded.codes == code).sum(axis=1) for code in range(len(coded.categories))], axis=1
    )
    return float(
        krippendorff.alpha(
            value_counts=value_counts,
            value_domain=_value_domain(coded, level),
            level_of_measurement=level,
        )
    )
