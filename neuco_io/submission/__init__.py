"""Embedding submissions: check one against the NeuCo-Bench rules, or write a correct one."""

from neuco_io.submission.check import PROFILES, check_submission, expected_ids
from neuco_io.submission.pack import pack_submission

__all__ = ["PROFILES", "check_submission", "expected_ids", "pack_submission"]
