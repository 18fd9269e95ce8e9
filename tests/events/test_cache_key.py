"""The cache key of ``generate_sample``: one normalisation of the extra settings, shared by
``cache_path`` and ``generate_sample`` (no events are generated here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from physgen.errors import ConfigError
from physgen.events import cache_path, generate_sample
from physgen.events import generate as generate_mod


def test_spellings_of_a_setting_share_one_cache_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHYSGEN_CACHE", str(tmp_path))
    spaced = cache_path("sim", 100, 3, ["TimeShower:alphaSvalue = 0.12"])
    assert cache_path("sim", 100, 3, ["TimeShower:alphaSvalue=0.12"]) == spaced
    assert cache_path("sim", 100, 3, ("  TimeShower:alphaSvalue =0.12 ",)) == spaced
    # a bare string is one setting, not a sequence of characters
    assert cache_path("sim", 100, 3, "TimeShower:alphaSvalue=0.12") == spaced
    assert cache_path("sim", 100, 3) != spaced
    assert cache_path("sim", 100, 3, ["TimeShower:alphaSvalue = 0.13"]) != spaced
    with pytest.raises(ConfigError, match="expected a Pythia setting 'Key = value'"):
        cache_path("sim", 100, 3, ["TimeShower:alphaSvalue"])


class _Looked(Exception):
    """Raised by the stand-in cache reader with the path generate_sample looked at."""


@pytest.mark.parametrize(
    "extra", ["TimeShower:alphaSvalue=0.12", ["TimeShower:alphaSvalue=0.12"], ()]
)
def test_generate_sample_looks_where_cache_path_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: object
) -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    pytest.importorskip("awkward")
    monkeypatch.setenv("PHYSGEN_CACHE", str(tmp_path))

    def looked(path: Path) -> None:
        raise _Looked(path)

    monkeypatch.setattr(generate_mod, "_load_cached", looked)
    with pytest.raises(_Looked) as info:
        generate_sample("sim", n=100, seed=3, extra_settings=extra, progress=False)  # type: ignore[arg-type]
    assert info.value.args[0] == cache_path("sim", 100, 3, extra)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # nothing generated or written
