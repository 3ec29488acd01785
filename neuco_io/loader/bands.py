"""Pick and reorder bands by name, per modality: `bands={"s2l2a": ["B04", "B03", "B02"], "s1": ["VV"]}`.

Names follow `spec.MODALITIES[m].bands` and match case-insensitively (S1's
`vv`/`vh` are often written `VV`/`VH`). A modality left out keeps every band
in its stored order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from neuco_io import spec
from neuco_io.errors import UsageError

__all__ = ["band_indices", "band_names", "parse_bands"]


def _index(modality: str, name: str) -> int:
    known = spec.MODALITIES[modality].bands
    lowered = [b.lower() for b in known]
    if not isinstance(name, str) or name.lower() not in lowered:
        raise UsageError(f"bands: {modality} has no band {name!r}; its bands are {', '.join(known)}")
    return lowered.index(name.lower())


def band_indices(bands: Mapping[str, Sequence[str]] | None, modalities: Sequence[str]
                 ) -> dict[str, tuple[int, ...]]:
    """Stored band index per picked band, for the modalities `bands` names (the others read whole).

    A modality not among `modalities`, an unknown or repeated band name, or an
    empty list is a UsageError naming the modality and its bands.
    """
    if bands is None:
        return {}
    if not isinstance(bands, Mapping):
        raise UsageError(f"bands: expected a mapping modality -> band names, got {bands!r}")
    picked: dict[str, tuple[int, ...]] = {}
    for modality, names in bands.items():
        if modality not in modalities:
            raise UsageError(f"bands: {modality!r} is not one of the modalities read ({', '.join(modalities)})")
        if isinstance(names, str) or not names:
            raise UsageError(f"bands: {modality} needs a non-empty list of band names (one of "
                             f"{', '.join(spec.MODALITIES[modality].bands)}), got {names!r}")
        indices = tuple(_index(modality, n) for n in names)
        if len(set(indices)) != len(indices):
            raise UsageError(f"bands: {modality} lists a band twice: {list(names)}")
        picked[modality] = indices
    return picked


def band_names(modality: str, indices: Mapping[str, tuple[int, ...]]) -> list[str]:
    """The names of the bands a sample holds for `modality`, in sample order."""
    known = spec.MODALITIES[modality].bands
    return [known[i] for i in indices[modality]] if modality in indices else list(known)


def parse_bands(text: Sequence[str]) -> dict[str, list[str]]:
    """`--bands s2l2a=B04,B03,B02 --bands s1=VV` as a `bands=` mapping (the CLI's spelling)."""
    out: dict[str, list[str]] = {}
    for item in text:
        modality, sep, names = item.partition("=")
        if not sep or not modality or not names:
            raise UsageError(f"--bands {item!r}: expected MODALITY=BAND,BAND,... (e.g. s2l2a=B04,B03,B02)")
        if modality in out:
            raise UsageError(f"--bands: {modality} given twice")
        out[modality] = [n.strip() for n in names.split(",") if n.strip()]
    return out
