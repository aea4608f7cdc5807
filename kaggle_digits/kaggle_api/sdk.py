"""The one door to kagglesdk, the official client's protocol library.

Importing it costs a few hundred milliseconds (every request type of every service), so it is
loaded on the first call that talks to Kaggle, never for `--help` or an offline command.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace


@functools.cache
def sdk() -> SimpleNamespace:
    """The kagglesdk names the toolkit uses, imported once."""
    from kagglesdk import KaggleClient
    from kagglesdk.competitions.types.competition_api_service import (
        ApiCreateSubmissionRequest,
        ApiDownloadDataFilesRequest,
        ApiGetLeaderboardRequest,
        ApiGetSubmissionLimitsRequest,
        ApiGetSubmissionRequest,
        ApiListSubmissionsRequest,
        ApiStartSubmissionUploadRequest,
    )
    from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest
    from kagglesdk.kaggle_creds import KaggleCredentials
    from kagglesdk.kaggle_env import KaggleEnv, get_endpoint, get_env
    from kagglesdk.kaggle_http_client import KaggleHttpClient
    from kagglesdk.kernels.types.kernels_api_service import (
        ApiDeleteKernelRequest,
        ApiGetAcceleratorQuotaStatisticsRequest,
        ApiGetKernelRequest,
        ApiGetKernelSessionStatusRequest,
        ApiListKernelSessionOutputRequest,
        ApiListKernelsRequest,
        ApiSaveKernelRequest,
    )
    from kagglesdk.kernels.types.kernels_enums import KernelsListViewType
    from kagglesdk.security.types.oauth_service import IntrospectTokenRequest

    return SimpleNamespace(
        KaggleClient=KaggleClient,
        ApiCreateSubmissionRequest=ApiCreateSubmissionRequest,
        ApiDownloadDataFilesRequest=ApiDownloadDataFilesRequest,
        ApiGetLeaderboardRequest=ApiGetLeaderboardRequest,
        ApiGetSubmissionLimitsRequest=ApiGetSubmissionLimitsRequest,
        ApiGetSubmissionRequest=ApiGetSubmissionRequest,
        ApiListSubmissionsRequest=ApiListSubmissionsRequest,
        ApiStartSubmissionUploadRequest=ApiStartSubmissionUploadRequest,
        ApiDownloadDatasetRequest=ApiDownloadDatasetRequest,
        KaggleCredentials=KaggleCredentials,
        KaggleEnv=KaggleEnv,
        get_endpoint=get_endpoint,
        get_env=get_env,
        KaggleHttpClient=KaggleHttpClient,
        ApiGetAcceleratorQuotaStatisticsRequest=ApiGetAcceleratorQuotaStatisticsRequest,
        ApiGetKernelSessionStatusRequest=ApiGetKernelSessionStatusRequest,
        ApiListKernelSessionOutputRequest=ApiListKernelSessionOutputRequest,
        ApiSaveKernelRequest=ApiSaveKernelRequest,
        ApiGetKernelRequest=ApiGetKernelRequest,
        ApiListKernelsRequest=ApiListKernelsRequest,
        ApiDeleteKernelRequest=ApiDeleteKernelRequest,
        KernelsListViewType=KernelsListViewType,
        IntrospectTokenRequest=IntrospectTokenRequest,
    )
