"""Consensus labelling's computations: agreement between readers and fusion of their masks.

Pure numpy (no Django): tables and arrays in, figures and arrays out. See docs/consensus.md.
"""

from reviews.consensus.agreement import (
    AgreementError,
    EmptyTableError,
    IncompleteCaseError,
    SingleCategoryError,
    TooFewReadersError,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
)
from reviews.consensus.fusion import StapleResult, majority_vote, staple
from reviews.consensus.masks import (
    MaskShapeError,
    PairwiseTable,
    bounding_box,
    dice,
    hausdorff_mm,
    hd95_mm,
    pairwise_table,
    surface_distances_mm,
)
from reviews.consensus.matching import Finding, Matching, findings_of, iou, match_findings

__all__ = [
    "AgreementError",
    "EmptyTableError",
    "Finding",
    "IncompleteCaseError",
    "MaskShapeError",
    "Matching",
    "PairwiseTable",
    "SingleCategoryError",
    "StapleResult",
    "TooFewReadersError",
    "bounding_box",
    "cohen_kappa",
    "dice",
    "findings_of",
    "fleiss_kappa",
    "hausdorff_mm",
    "hd95_mm",
    "iou",
    "krippendorff_alpha",
    "majority_vote",
    "match_findings",
    "pairwise_table",
    "staple",
    "surface_distances_mm",
]
