"""Turn one location's arrays into a sample, with the reference loader's options and semantics.

Both datasets (over cubes and over shards) end here, so the same location
gives the same sample whatever it was read from. See docs/format.md for what
NeuCo-Bench's `SSL4EODownstreamDataset` does; the differences are on
purpose: the sample axis is dropped (`[T, C, 264, 264]`, so the default
collate stacks what the reference collate concatenates), `shift_s2` defaults
to "auto" (S2 always in the v1.1 convention, whichever layout it came from)
and cannot overflow int16, and `randomize_seasons` is seeded per location and epoch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.errors import UsageError
from neuco_io.loader.bands import band_indices, band_names
from neuco_io.loader.normalize import Normalization, resolve_normalize

__all__ = ["SampleOptions"]

DTYPES = ("float32", "native")
OUTPUTS = ("numpy", "torch")


def _id_seed(loc_id: str) -> int:
    return int.from_bytes(hashlib.sha256(loc_id.encode()).digest()[:8], "little")


@dataclass
class SampleOptions:
    """What a sample looks like. Validated once, applied to every location."""

    modalities: list[str] = field(default_factory=lambda: list(spec.DOWNSTREAM_MODALITIES))
    seasons: int | Sequence[int] = spec.N_TIMES
    randomize_seasons: bool = False
    concat: bool = True
    transform: Callable[[Any], Any] | None = None
    shift_s2: bool | str = "auto"
    return_id: bool = False
    tasks: list[str] | None = None
    dtype: str = "float32"
    output: str = "numpy"
    seed: int = 0
    bands: dict[str, Sequence[str]] | None = None
    """Bands to keep per modality, by name and in this order (`loader.bands`); other modalities keep all."""
    normalize: Any = None
    """Statistics to standardize with (`loader.normalize`): a published name, a stats.json path or a mapping."""
    band_index: dict[str, tuple[int, ...]] = field(init=False, repr=False)
    normalization: Normalization | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = [m for m in self.modalities if m not in spec.MODALITIES]
        if not self.modalities or unknown:
            raise UsageError(f"modalities: expected a non-empty subset of {', '.join(spec.MODALITIES)}, got "
                             f"{self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise UsageError(f"modalities: {self.modalities} repeats a modality")
        if isinstance(self.seasons, (int, np.integer)):
            if not 1 <= int(self.seasons) <= spec.N_TIMES:
                raise UsageError(f"seasons: an int must be 1..{spec.N_TIMES} (the first n), got {self.seasons}")
        else:
            picked = [int(s) for s in self.seasons]
            if not picked or any(not 0 <= s < spec.N_TIMES for s in picked) or len(set(picked)) != len(picked):
                raise UsageError(f"seasons: a list must hold distinct season indices 0..{spec.N_TIMES - 1} "
                                 f"({', '.join(f'{i}={n}' for i, n in enumerate(spec.SEASONS))}), got "
                                 f"{self.seasons}")
            self.seasons = picked
        if not (isinstance(self.shift_s2, bool) or self.shift_s2 == "auto"):
            raise UsageError(f"shift_s2: expected True, False or 'auto', got {self.shift_s2!r}")
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype: expected one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.output not in OUTPUTS:
            raise UsageError(f"output: expected one of {', '.join(OUTPUTS)}, got {self.output!r}")
        self.band_index = band_indices(self.bands, self.modalities)
        self.normalization = resolve_normalize(self.normalize, self.modalities)
        if self.normalization is not None and self.dtype != "float32":
            raise UsageError(f"normalize: needs dtype='float32' (normalized values are not integers), got "
                             f"dtype={self.dtype!r}")
        if self.output == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                raise UsageError("output='torch' needs PyTorch: pip install 'neuco-io[torch]'") from None

    @property
    def n_seasons(self) -> int:
        return int(self.seasons) if isinstance(self.seasons, (int, np.integer)) else len(self.seasons)

    @property
    def wants_dict(self) -> bool:
        return self.return_id or self.tasks is not None

    def season_indices(self, loc_id: str, epoch: int = 0) -> list[int]:
        """Which timestamps, in which order, for this location (and epoch, when randomized)."""
        if self.randomize_seasons:
            pool = list(range(spec.N_TIMES)) if isinstance(self.seasons, (int, np.integer)) else list(self.seasons)
            rng = np.random.default_rng([self.seed, epoch, _id_seed(loc_id)])
            return [pool[i] for i in rng.permutation(len(pool))[: self.n_seasons]]
        if isinstance(self.seasons, (int, np.integer)):
            return list(range(int(self.seasons)))
        return list(self.seasons)

    def shifts(self, s2_offset: bool) -> bool:
        """Whether S2 gets +1000, for a source that already has the offset (v1.1) or not (downstream)."""
        return not s2_offset if self.shift_s2 == "auto" else bool(self.shift_s2)

    def band_names(self, modality: str) -> list[str]:
        """The bands a sample holds for `modality`, in sample order."""
        return band_names(modality, self.band_index)

    def _convert(self, modality: str, array: np.ndarray, shift: bool, s2_offset: bool) -> np.ndarray:
        if modality in self.band_index or self.normalization is not None:
            return self._joined({modality: array}, shift, s2_offset, [modality])
        shift = shift and spec.MODALITIES[modality].s2
        if self.dtype == "float32":
            out = array.astype(np.float32)
            if shift:
                out += spec.S2_OFFSET
            return out
        if shift:  # native dtype, but int16/uint16 + 1000 may not fit: widen
            return array.astype(np.int32) + spec.S2_OFFSET
        return array

    def build(self, loc_id: str, arrays: dict[str, np.ndarray], labels: dict[str, float] | None = None,
              epoch: int = 0, selected: bool = False, s2_offset: bool = False) -> Any:
        """A sample from (time, band, y, x) arrays per modality: all four timestamps, or with `selected`
        the ones `season_indices(loc_id, epoch)` chose, already in that order. `s2_offset`: the source's
        S2 values already include +1000 (v1.1)."""
        shift = self.shifts(s2_offset)
        times = self.season_indices(loc_id, epoch)
        raw = {m: arrays[m] if selected else _take(arrays[m], times) for m in self.modalities}
        data: Any
        if self.concat or self.transform is not None:
            joined = self._to_output(self._joined(raw, shift, s2_offset))
            if self.transform is not None:
                joined = self.transform(joined)
            if self.concat:
                data = joined
            else:
                data, start = {}, 0
                for m in self.modalities:
                    n = len(self.band_index.get(m, ())) or raw[m].shape[-3]
                    data[m] = joined[..., start:start + n, :, :]
                    start += n
        else:
            data = {m: self._to_output(self._convert(m, a, shift, s2_offset)) for m, a in raw.items()}
        if not self.wants_dict:
            return data
        sample: dict[str, Any] = {"id": loc_id, "data": data}
        if self.tasks is not None:
            labels = labels or {}
            sample["labels"] = {t: float(labels.get(t, math.nan)) for t in self.tasks}
        return sample

    def _target_dtype(self, modality: str, dtype: np.dtype, shift_s2: bool) -> np.dtype:
        if self.dtype == "float32":
            return np.dtype(np.float32)
        return np.dtype(np.int32) if shift_s2 and spec.MODALITIES[modality].s2 else dtype

    def _joined(self, raw: dict[str, np.ndarray], shift_s2: bool, s2_offset: bool,
                modalities: Sequence[str] | None = None) -> np.ndarray:
        """Bands of the modalities in one array, picked, converted, shifted and normalized on the way in (one
        copy per band, then at most two in-place passes: no temporaries)."""
        modalities = list(self.modalities if modalities is None else modalities)
        first = raw[modalities[0]]
        dtype = np.result_type(*(self._target_dtype(m, raw[m].dtype, shift_s2) for m in modalities))
        picked = {m: self.band_index.get(m, range(raw[m].shape[-3])) for m in modalities}
        n_bands = sum(len(picked[m]) for m in modalities)
        out = np.empty((*first.shape[:-3], n_bands, *first.shape[-2:]), dtype=dtype)
        start = 0
        for m in modalities:
            bands, n = picked[m], len(picked[m])
            view = out[..., start:start + n, :, :]
            if isinstance(bands, range):
                view[...] = raw[m]
            else:
                for j, b in enumerate(bands):
                    view[..., j, :, :] = raw[m][..., b, :, :]
            shift = shift_s2 and spec.MODALITIES[m].s2
            norm = self.normalization and self.normalization.center_and_scale(m, bands, s2_offset, shift)
            if norm:
                center, scale = norm
                view -= center[:, None, None]
                view *= scale[:, None, None]
            elif shift:
                view += spec.S2_OFFSET
            start += n
        return out

    def _to_output(self, array: np.ndarray) -> Any:
        if self.output == "torch":
            import torch

            return torch.from_numpy(np.ascontiguousarray(array))
        return array


def _take(array: np.ndarray, times: list[int]) -> np.ndarray:
    if times == list(range(array.shape[0])):
        return array
    return array[times]
