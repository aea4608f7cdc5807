"""Kaggle at the edge: the only package that talks to Kaggle, through the official client.

Two kinds of host, kept apart (as on kaggle.com):
- client.py: the API host (api.kaggle.com): the credentials go there and nowhere else; retries for
  what is transient; CreateSubmission never resent; typed answers.
- storage.py: the storage host (signed Cloud Storage URLs): downloads and uploads, no credentials.
- kernels.py: the Kernels API (push a script, follow its session, bring back its output).
- credentials.py: the official client's sources, in its order. retries.py: the transport policy.
"""

from .client import Kaggle, LeaderboardEntry, Limits, SubmissionState
from .credentials import TOKEN_HELP, Credentials
from .kernels import GpuQuota, KernelOutput, Kernels, KernelState, PushedKernel
from .retries import RetryPolicy

__all__ = [
    "Kaggle",
    "LeaderboardEntry",
    "Limits",
    "SubmissionState",
    "Credentials",
    "RetryPolicy",
    "TOKEN_HELP",
    "GpuQuota",
    "KernelOutput",
    "Kernels",
    "KernelState",
    "PushedKernel",
]
