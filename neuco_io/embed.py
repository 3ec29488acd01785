"""`neuco-io embed`: stream a dataset through an encoder into a NeuCo-Bench embedding file.

The encoder sees batches `{"id": [...], "<modality>": float32 array [B, T, C, H, W], ...}`
and returns `[B, D]` (numpy or torch). The output is the evaluator's CSV
(`id,0,1,...,D-1`, docs/format.md) or Parquet with the same columns, written
under a temporary name and renamed when complete. An encoder that returns a
wrong shape, NaN or infinity stops the run with a message naming the ids.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.errors import NeucoError, UsageError
from neuco_io.execution import Progress
from neuco_io.findings import and_more
from neuco_io.storage.atomic import atomic_path
from neuco_io.submission.writer import EmbeddingWriter

__all__ = ["EmbedError", "EmbedResult", "EncoderFailed", "MeanEncoder", "embed", "load_encoder"]


class EmbedError(NeucoError):
    """The encoder returned something that is not a valid embedding batch."""


class EncoderFailed(EmbedError):
    """The user's encoder raised: their code, so their traceback is part of the message."""

    def __init__(self, what: str, exc: BaseException) -> None:
        import traceback

        frames = exc.__traceback__.tb_next if exc.__traceback__ else None  # from the user's first frame on
        self.traceback = "".join(traceback.format_exception(type(exc), exc, frames)).rstrip()
        super().__init__(f"{what}: {type(exc).__name__}: {exc}\n{self.traceback}")


@dataclass
class EmbedResult:
    out: Path
    rows: int
    dim: int
    """Columns written (after padding)."""
    encoder_dim: int

    def to_dict(self) -> dict[str, Any]:
        """What `embed --format json` prints (with the run's warnings)."""
        return {"out": str(self.out), "rows": self.rows, "dim": self.dim, "encoder_dim": self.encoder_dim}


class MeanEncoder:
    """A deterministic baseline: per season and band, the spatial mean and standard deviation.

    D = 2 x seasons x bands (216 for three modalities and four seasons), in the
    order modality, season, band, statistic (mean, std).
    """

    def __call__(self, batch: dict[str, Any]) -> np.ndarray:
        parts = []
        for name, data in batch.items():
            if name == "id":
                continue
            x = np.asarray(data, dtype=np.float64)  # [B, T, C, H, W]
            stats = np.stack([x.mean(axis=(-2, -1)), x.std(axis=(-2, -1))], axis=-1)  # [B, T, C, 2]
            parts.append(stats.reshape(stats.shape[0], -1))
        return np.concatenate(parts, axis=1).astype(np.float32)


def load_encoder(spec_text: str) -> Callable[[dict[str, Any]], Any]:
    """`mean`, `package.module:callable`, or `path/to/file.py:callable` (a class is instantiated)."""
    if spec_text == "mean":
        return MeanEncoder()
    if ":" not in spec_text:
        raise UsageError(f"--encoder {spec_text!r}: use 'mean', 'module:callable' or 'file.py:callable'")
    target, _, attr = spec_text.rpartition(":")
    try:
        if target.endswith(".py") or os.sep in target:
            path = Path(target)
            if not path.is_file():
                raise UsageError(f"--encoder: {path} does not exist")
            module_spec = importlib.util.spec_from_file_location(f"neuco_encoder_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module  # so DataLoader workers and pickling can find it
            try:
                module_spec.loader.exec_module(module)
            except Exception as exc:
                raise EncoderFailed(f"--encoder {spec_text!r}: {path} raised on import", exc) from None
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(target)
    except (UsageError, EncoderFailed):
        raise
    except Exception as exc:
        raise UsageError(f"--encoder {spec_text!r}: cannot import {target}: {type(exc).__name__}: {exc}") from None
    encoder = getattr(module, attr, None)
    if encoder is None:
        raise UsageError(f"--encoder {spec_text!r}: {target} has no attribute {attr!r}")
    if isinstance(encoder, type):
        try:
            encoder = encoder()
        except Exception as exc:
            raise EncoderFailed(f"--encoder {spec_text!r}: creating {attr}() raised", exc) from None
    if not callable(encoder):
        raise UsageError(f"--encoder {spec_text!r}: {attr} is not callable")
    return encoder


def labelled_ids(folder: str | os.PathLike[str]) -> list[str]:
    """The ids with a label in any task file of a label folder (or of a dataset's labels/), in file order."""
    from neuco_io.tasks.tasklist import dataset_tasks

    folder = Path(folder)
    if (folder / "labels").is_dir():
        folder = folder / "labels"
    if not folder.is_dir():
        raise UsageError(f"--labels {folder}: not a folder")
    ids: dict[str, None] = {}
    for task in dataset_tasks(folder, strict=False).values():
        ids.update(dict.fromkeys(task.labels()))
    if not ids:
        raise UsageError(f"--labels {folder}: no labelled id in its <task>__<type>.csv files")
    return list(ids)


def _dataset(source: Any, modalities, seasons, shift_s2, layout, storage_options, bands=None, ids=None):
    from neuco_io.loader import CubeDataset, ShardDataset
    from neuco_io.shards.manifest import is_shard_source, refuse_interrupted
    from neuco_io.storage import open_store

    options = {"modalities": modalities, "seasons": seasons, "shift_s2": shift_s2, "concat": False,
               "return_id": True, "storage_options": storage_options, "bands": bands, "ids": ids}
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        refuse_interrupted(open_store(text, storage_options).path)
        if not is_shard_source(text, storage_options):
            return CubeDataset(text, layout=layout, **options)
    return ShardDataset(source, **options)


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {"id": [s["id"] for s in samples]}
    for name in samples[0]["data"]:
        batch[name] = np.stack([np.asarray(s["data"][name]) for s in samples])
    return batch


def _batches(dataset, batch_size: int, workers: int) -> Iterator[dict[str, Any]]:
    if workers > 0:
        try:
            from torch.utils.data import DataLoader
        except ImportError:
            raise UsageError("--workers needs PyTorch: pip install 'neuco-io[torch]'") from None
        yield from DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate)
        return
    from neuco_io.loader import CubeDataset

    items: Iterator = (dataset[i] for i in range(len(dataset))) if isinstance(dataset, CubeDataset) else iter(dataset)
    pending: list[dict[str, Any]] = []
    for sample in items:
        pending.append(sample)
        if len(pending) == batch_size:
            yield _collate(pending)
            pending = []
    if pending:
        yield _collate(pending)


def _as_matrix(result: Any, ids: list[str]) -> np.ndarray:
    if hasattr(result, "detach"):  # a torch tensor
        result = result.detach().cpu().numpy()
    try:
        matrix = np.asarray(result, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbedError(f"the encoder returned {type(result).__name__}, not numbers, for ids {_ids(ids)}: "
                         f"{exc}") from None
    if matrix.ndim != 2 or matrix.shape[0] != len(ids):
        raise EmbedError(f"the encoder returned shape {list(matrix.shape)} for a batch of {len(ids)}, expected "
                         f"[{len(ids)}, D]; ids {_ids(ids)}")
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise EmbedError(f"the encoder returned NaN or infinity for ids {_ids([i for i, b in zip(ids, bad) if b])}")
    return matrix


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + and_more(len(ids) - 5)  # whole ids: the user looks them up


def embed(
    source: str | os.PathLike[str] | Sequence[str],
    encoder: str | Callable[[dict[str, Any]], Any],
    out: str | os.PathLike[str],
    *,
    batch_size: int = 16,
    workers: int = 0,
    modalities: Sequence[str] | None = None,
    seasons: int | Sequence[int] = spec.N_TIMES,
    shift_s2: bool | str = "auto",
    dim: int | None = None,
    layout: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    storage_options: dict[str, Any] | None = None,
    bands: dict[str, Sequence[str]] | None = None,
    ids: str | os.PathLike[str] | Sequence[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
) -> EmbedResult:
    """Embed every location of `source` (a dataset root or converted shards) into `out` (.csv or .parquet).

    `shift_s2` as in the loader: "auto" (default) gives S2 in the v1.1 convention from either layout.
    `bands` as in the loader: the bands the encoder gets per modality, by name and in that order.
    `ids` (a list or a file, one id per line) or `labels` (a label folder: its labelled ids) embed only
    those locations; shards are then read through the manifest's index (only the records needed).
    """
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise UsageError(f"--out {out}: use a .csv (NeuCo-Bench format) or .parquet file name")
    if batch_size < 1 or workers < 0 or (dim is not None and dim < 1):
        raise UsageError("--batch-size and --dim must be positive, --workers not negative")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (use --overwrite)")
    if ids is not None and labels is not None:
        raise UsageError("--ids and --labels: give one of them")
    if labels is not None:
        ids = labelled_ids(labels)
    model = load_encoder(encoder) if isinstance(encoder, str) else encoder
    dataset = _dataset(source, list(modalities) if modalities else None, seasons, shift_s2, layout, storage_options,
                       bands, ids)
    if on_start:
        on_start(len(dataset))
    rows, encoder_dim = 0, None
    with atomic_path(out, overwrite=True) as temp:
        writer: EmbeddingWriter | None = None
        try:
            for batch in _batches(dataset, batch_size, workers):
                ids = list(batch["id"])
                try:
                    result = model(batch)
                except Exception as exc:
                    raise EncoderFailed(f"the encoder raised on the batch of ids {_ids(ids)}", exc) from None
                matrix = _as_matrix(result, ids)
                if encoder_dim is None:
                    encoder_dim = matrix.shape[1]
                    if dim is not None and encoder_dim > dim:
                        raise EmbedError(f"the encoder returns {encoder_dim} dimensions, more than --dim {dim}")
                    writer = EmbeddingWriter(temp, dim or encoder_dim, parquet=out.suffix == ".parquet")
                elif matrix.shape[1] != encoder_dim:
                    raise EmbedError(f"the encoder returned {matrix.shape[1]} dimensions for ids {_ids(ids)}, after "
                                     f"{encoder_dim} for earlier batches")
                if dim is not None and dim > encoder_dim:
                    matrix = np.pad(matrix, ((0, 0), (0, dim - encoder_dim)))
                writer.write(ids, matrix)
                rows += len(ids)
                if progress:
                    progress(len(ids))
            if writer is None:
                raise EmbedError(f"{source}: no location to embed")
        finally:
            if writer is not None:
                writer.close()
            if hasattr(dataset, "close"):  # a CubeDataset's open cubes
                dataset.close()
    return EmbedResult(out, rows, dim or encoder_dim or 0, encoder_dim or 0)
