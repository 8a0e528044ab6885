"""Manifest and DataInfo: JSON round trip, forward compatibility, validation messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from store_helpers import build_data_info

from models_store import FORMAT_VERSION, DataInfo, Manifest
from models_store.errors import CorruptVersion, InvalidContents, InvalidName, UnknownFormat
from models_store.manifest import iso_utc, validate_name, validate_version

SHA = "ab" * 32


def make_manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "model": "i-autorec",
        "version": "12",
        "created_at": "2026-11-23T10:00:00Z",
        "data": build_data_info(),
        "hyper_parameters": {"hidden": 500, "lr": 1e-3},
        "scorer_config": {"model": "i-autorec", "rating_range": [1.0, 5.0]},
        "metrics": {"rmse": 0.83},
        "training": {"seconds": 12.5, "best_epoch": 40},
        "files": {"tensors.safetensors": {"sha256": SHA, "bytes": 10}},
    }
    fields.update(overrides)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_json_round_trip_keeps_every_field() -> None:
    manifest = make_manifest()
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    body = json.loads(manifest.to_json())
    assert body["format_version"] == FORMAT_VERSION == 1
    assert body["version"] == "12"
    assert body["data"]["cutoff"] == "1998-04-22T23:10:38.000Z"
    assert body["files"] == {"tensors.safetensors": {"sha256": SHA, "bytes": 10}}


def test_unknown_keys_are_tolerated_on_read() -> None:
    body = make_manifest().to_dict()
    body["written_by"] = "genrec 9.0"
    body["data"]["license"] = "research only"
    assert Manifest.from_dict(body) == make_manifest()


def test_other_format_version_is_unknown_format() -> None:
    body = make_manifest().to_dict()
    body["format_version"] = 2
    with pytest.raises(UnknownFormat, match="format_version 2 is not supported"):
        Manifest.from_dict(body, "store/m/versions/1/manifest.json")


def test_missing_fields_and_bad_json_are_corrupt() -> None:
    body = make_manifest().to_dict()
    del body["files"]
    with pytest.raises(CorruptVersion, match="missing field"):
        Manifest.from_dict(body, "somewhere")
    with pytest.raises(CorruptVersion, match="not valid JSON"):
        Manifest.from_json(b"{not json", "somewhere")
    with pytest.raises(CorruptVersion, match="no 'format_version'"):
        Manifest.from_json(b"{}", "somewhere")


def test_bad_field_values_read_from_disk_are_corrupt_with_the_place() -> None:
    body = make_manifest().to_dict()
    body["files"]["tensors.safetensors"]["sha256"] = "xyz"
    with pytest.raises(CorruptVersion, match=r"^where/manifest.json: .*sha256"):
        Manifest.from_dict(body, "where/manifest.json")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": "0"}, "positive integer"),
        ({"version": "03"}, "positive integer"),
        ({"model": "Mult VAE"}, "invalid model name"),
        ({"created_at": "2026-11-23T10:00:00"}, "must be in UTC"),
        ({"created_at": "yesterday"}, "not ISO-8601"),
        ({"metrics": {"ndcg": float("nan")}}, "not a finite number"),
        ({"metrics": {"ndcg": "high"}}, "not a number"),
        ({"hyper_parameters": {"f": object()}}, "not JSON-serialisable"),
        ({"files": {"../x": {"sha256": SHA, "bytes": 1}}}, "invalid file name"),
        ({"files": {"a.json": {"sha256": SHA, "bytes": -1}}}, "non-negative integer"),
    ],
)
def test_invalid_values_are_refused_with_a_message(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises((InvalidContents, InvalidName), match=message):
        make_manifest(**overrides)


#: A retrieval section as ``training.ann`` writes it (the files are the version's).
INDEXED = {
    "file": "items.faiss",
    "kind": "ivf-flat",
    "n_items": 1000,
    "dims": 65,
    "nlist": 126,
    "nprobe": 16,
    "train_rows": 1000,
    "seed": 0,
    "similar": {"file": "similar.faiss", "n_items": 1000, "dims": 64, "nlist": 126, "nprobe": 32},
}
INDEX_FILES = {
    "tensors.safetensors": {"sha256": SHA, "bytes": 10},
    "items.faiss": {"sha256": SHA, "bytes": 10},
    "similar.faiss": {"sha256": SHA, "bytes": 10},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nlist": -3}, r"retrieval\.nlist must be a positive integer, got -3"),
        ({"nprobe": 0}, r"retrieval\.nprobe must be a positive integer, got 0"),
        ({"dims": "65"}, r"retrieval\.dims must be a positive integer, got '65'"),
        ({"n_items": True}, r"retrieval\.n_items must be a positive integer"),
        ({"train_rows": 1.5}, r"retrieval\.train_rows must be a positive integer"),
        ({"nlist": 1001}, r"retrieval\.nlist 1001 is more than its n_items 1000"),
        ({"nprobe": 127}, r"retrieval\.nprobe 127 is more than its nlist 126"),
        (
            {"similar": {**INDEXED["similar"], "dims": -64}},  # type: ignore[dict-item]
            r"retrieval\.similar\.dims must be a positive integer",
        ),
    ],
)
def test_a_damaged_retrieval_section_makes_the_manifest_unreadable(
    change: dict[str, object], message: str
) -> None:
    """The manifest is the one file no checksum covers, and ``nlist: -3`` was promoted and
    served with GENREC_ANN=on (``nprobe: -3`` raised out of the index loader)."""
    assert make_manifest(files=INDEX_FILES, retrieval=INDEXED).retrieval == INDEXED
    body = make_manifest(files=INDEX_FILES, retrieval=INDEXED).to_dict()
    body["retrieval"].update(change)
    with pytest.raises(CorruptVersion, match=rf"^where/manifest\.json: {message}"):
        Manifest.from_dict(body, "where/manifest.json")


def test_data_info_normalises_cutoff_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    info = DataInfo("f", datetime(2020, 1, 1, 2, 0, tzinfo=plus_two), "csv", 1, 2, 3)  # type: ignore[arg-type]
    assert info.cutoff == "2020-01-01T00:00:00.000Z"
    assert DataInfo("f", None, "csv", 0, 0, 0).cutoff is None
    with pytest.raises(InvalidContents, match="n_items must be a non-negative integer"):
        DataInfo("f", None, "csv", 1, -2, 3)
    with pytest.raises(InvalidContents, match="must be in UTC"):
        DataInfo("f", "2020-01-01T00:00:00+02:00", "csv", 1, 2, 3)


def test_iso_utc_refuses_naive_datetimes() -> None:
    assert iso_utc(datetime(2021, 5, 1, tzinfo=UTC)) == "2021-05-01T00:00:00.000Z"
    with pytest.raises(InvalidContents, match="no timezone"):
        iso_utc(datetime(2021, 5, 1))


@pytest.mark.parametrize("name", ["", ".", "..", ".lock", "a/b", "a\\b", "UPPER", "x" * 129, 7])
def test_validate_name_refuses_unsafe_names(name: object) -> None:
    with pytest.raises(InvalidName, match="invalid model"):
        validate_name(name, "model")


def test_validate_version_accepts_ints_and_canonical_strings() -> None:
    assert validate_version(3) == "3"
    assert validate_version("42") == "42"
    for bad in (0, -1, True, "1.0", "", "v1"):
        with pytest.raises(InvalidName, match="positive integer"):
            validate_version(bad)
