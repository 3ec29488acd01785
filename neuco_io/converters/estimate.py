"""What a conversion will produce and take, before it runs (`convert --dry-run`), and how its shards share
the workers.

Bytes come from the plan (source bytes per location, or the decoded size for `--codec none`); time comes
from a measurement on this machine: one record written by the real shard writer into a temporary folder
(not OUT), twice, the second (warm) run timed.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from neuco_io.converters.plan import Plan, Skipped
from neuco_io.converters.shards import ShardJob, write_shard

__all__ = ["ConvertEstimate", "measure_rate", "parallelism_note"]


@dataclass
class ConvertEstimate:
    """The plan of a conversion, nothing written (`convert(..., dry_run=True)`)."""

    out: Any
    format: str
    records: int
    shards: int
    bytes: int
    """Estimated output bytes."""
    jobs: int
    rate: float | None
    """Measured output bytes per second of one worker (None when there is nothing to measure)."""
    seconds: float | None
    """Estimated wall time with `jobs` workers."""
    action: str
    """What the run would do in OUT: new, resume, replace."""
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """What `convert --dry-run --format json` prints."""
        return {"dry_run": True, "out": str(self.out), "format": self.format, "action": self.action,
                "records": self.records, "shards": self.shards, "estimated_bytes": self.bytes, "jobs": self.jobs,
                "measured_bytes_per_second_per_job": round(self.rate) if self.rate else None,
                "estimated_seconds": round(self.seconds, 3) if self.seconds is not None else None,
                "skipped": [vars(s) for s in self.skipped], "notes": self.notes}


def measure_rate(job: ShardJob) -> float | None:
    """Output bytes per second of one worker writing the first record of `job`'s shard."""
    if not job.spec.sources:
        return None
    one = replace(job, spec=replace(job.spec, sources=job.spec.sources[:1]))
    with tempfile.TemporaryDirectory(prefix="neuco-io-dry-run-") as temp:
        one = replace(one, out=Path(temp))
        write_shard(one)  # warm: imports, codec set-up
        start = time.perf_counter()
        result = write_shard(one)
        elapsed = time.perf_counter() - start
    return result.bytes / max(elapsed, 1e-6)


def parallelism_note(plan: Plan, jobs: int, max_records: int | None = None) -> str | None:
    """When there are fewer shards than workers, say so and suggest a shard size that feeds them all."""
    shards = len(plan.shards)
    if jobs <= 1 or shards >= jobs or shards == 0:
        return None
    idle = jobs - shards
    if max_records is not None:
        fix = f"--max-records {max(1, math.ceil(plan.n_records / jobs))}"
    else:
        total = sum(src.est_bytes for s in plan.shards for src in s.sources)
        fix = f"--shard-size {max(1, math.ceil(total / jobs / 1e6))}MB"
    return (f"{shards} shard{'s' if shards != 1 else ''} for {jobs} jobs: a shard is written by one worker, so "
            f"{idle} {'stays' if idle == 1 else 'stay'} idle; {fix} gives about {jobs} shards")


def estimate_seconds(total_bytes: int, rate: float | None, jobs: int, shards: int) -> float | None:
    if not rate:
        return None
    return total_bytes / rate / max(1, min(jobs, shards))
