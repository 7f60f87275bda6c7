"""JSON API views of the reviews app (one view per operation); routes in config/api_urls.py."""

from reviews.api.consensus import (
    ConsensusCaseApi,
    ConsensusCaseListApi,
    ConsensusCaseMaskApi,
    ConsensusDecisionMaskApi,
    ConsensusProjectApi,
    ConsensusProjectListApi,
    ReferenceCreateApi,
)
from reviews.api.exports import FeedbackExportCreateApi, FeedbackExportFileApi, FeedbackExportStatusApi
from reviews.api.me import CurrentUserApi
from reviews.api.readings import (
    DecisionMaskApi,
    DecisionsApi,
    ReadingApi,
    ReadingHeartbeatApi,
    ReadingListCreateApi,
    ReadingLockApi,
    ReadingRevealApi,
    ReadingSubmitApi,
)
from reviews.api.worklist import AssignmentCreateApi, ProjectListApi, WorklistApi

__all__ = [
    "AssignmentCreateApi",
    "ConsensusCaseApi",
    "ConsensusCaseListApi",
    "ConsensusCaseMaskApi",
    "ConsensusDecisionMaskApi",
    "ConsensusProjectApi",
    "ConsensusProjectListApi",
    "CurrentUserApi",
    "DecisionMaskApi",
    "DecisionsApi",
    "FeedbackExportCreateApi",
    "FeedbackExportFileApi",
    "FeedbackExportStatusApi",
    "ProjectListApi",
    "ReadingApi",
    "ReadingHeartbeatApi",
    "ReadingListCreateApi",
    "ReadingLockApi",
    "ReadingRevealApi",
    "ReadingSubmitApi",
    "ReferenceCreateApi",
    "WorklistApi",
]
