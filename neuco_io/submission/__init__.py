"""Embedding submissions: check one against the NeuCo-Bench rules, or write a correct one."""

from .check import PROFILES, check_submission, expected_ids
from .pack import pack_submission

__all__ = ["PROFILES", "check_submission", "expected_ids", "pack_submission"]
