"""``genrec models index NAME@VERSION``: (re)builds a stored version's retrieval index."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from models_store import ModelStore


def test_index_rebuilds_a_versions_index_with_other_settings(env: Path, cli_settings: Path) -> None:
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--model", "bpr-mf", "--data", str(env), "--set", "epochs=1", "--promote"]
    )
    assert trained.exit_code == 0, trained.output
    store = ModelStore(cli_settings / "store")
    saved = store.manifest("bpr-mf", "1").retrieval
    assert saved["nprobe"] == 1  # 12 items: one list
    # Measured at save on the version's users: one list holds the whole top (all 12 items).
    assert saved["calibration"]["recall"] == 1.0 and saved["calibration"]["k"] == 12

    calibrated = runner.invoke(app, ["models", "index", "bpr-mf@production"])
    assert calibrated.exit_code == 0, calibrated.output
    assert "retrieval nprobe 1 (of 1) finds 100.0% of the exact top 12 of" in calibrated.output

    result = runner.invoke(
        app, ["models", "index", "bpr-mf@production", "--nlist", "2", "--nprobe", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "retrieval ivf-flat index over 12 items" in result.output
    assert "similar-items ivf-flat index over 12 items" in result.output
    assert "building the similar-items index over 12 x" in result.output  # progress
    loaded = store.load("bpr-mf", "1")  # the version still verifies, index files included
    assert loaded.manifest.retrieval["nlist"] == 2 and loaded.manifest.retrieval["nprobe"] == 2
    assert "calibration" not in loaded.manifest.retrieval  # an explicit nprobe is not measured
    assert loaded.manifest.retrieval["similar"]["nlist"] == 2
    assert {"items.faiss", "similar.faiss"} <= loaded.mapped.keys()


def test_index_refuses_models_scored_exactly_and_bad_settings(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["train", "--model", "ease", "--data", str(env)]).exit_code == 0
    refused = runner.invoke(app, ["models", "index", "ease@1"])
    assert refused.exit_code == 2
    assert "not of inner-product form" in refused.output and "Traceback" not in refused.output
    missing = runner.invoke(app, ["models", "index", "ease@7"])
    assert missing.exit_code == 2 and "no version 7" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--similar-nprobe", "0"], "Invalid value for '--similar-nprobe'"),
        (["--nprobe", "0"], "Invalid value for '--nprobe'"),
        (["--nlist", "0"], "Invalid value for '--nlist'"),
        # Past any index FAISS is tuned for: refused before the version is read.
        (["--nlist", "1048577"], "Invalid value for '--nlist'"),
        (["--nlist", str(2**64)], "Invalid value for '--nlist'"),
        (["--nprobe", "1048577"], "Invalid value for '--nprobe'"),
        (["--similar-nprobe", "1048577"], "Invalid value for '--similar-nprobe'"),
        (["--nlist", "2", "--nprobe", "3"], "--nprobe 3 is more than --nlist 2"),
        (["--nlist", "2", "--similar-nprobe", "3"], "--similar-nprobe 3 is more than --nlist 2"),
    ],
)
def test_index_refuses_counts_out_of_range_before_reading_the_version(
    env: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """``--similar-nprobe 0`` built the index with nprobe 1, unsaid; the others were
    refused only after the version was read and its users' queries computed."""
    import training.ann

    def indexed(*args: object, **kwargs: object) -> None:
        raise AssertionError("the version was read")

    monkeypatch.setattr(training.ann, "index_version", indexed)
    refused = CliRunner().invoke(app, ["models", "index", "bpr-mf@1", *args])
    assert refused.exit_code == 2, refused.output
    assert message in refused.output and "Traceback" not in refused.output
