"""The peer benchmark's ``text`` protocol (ConvMF against Cornac's) on tiny synthetic data.

The real Cornac run needs the TensorFlow venv and minutes per epoch, so it is
not in the suite. What is: the split and its documents (both libraries must see
the same words), genrec's ConvMF through the runner, the Cornac adapter's epoch
hook and predictions driven as Cornac's ``_fit_convmf`` drives them, and the
scoring of a rating-predicting peer on this protocol.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.peers.adapters import cornac_adapter
from benchmarks.peers.adapters.common import Recorder, read_split
from benchmarks.peers.genrec_runner import run as run_genrec
from benchmarks.peers.run import CONVMF_SHARED, Job, Library, parse, run_job, synthetic_clicks
from benchmarks.peers.score import score_run
from benchmarks.peers.split import SplitSettings, SplitWriteError, read_interactions, write_splits
from benchmarks.peers.text_stats import document_lengths, untrained_rows
from training.data.documents import build_vocabulary, encode
from training.data.interactions import Interactions

N_USERS, N_ITEMS = 60, 40
WORDS = [f"word{c}{d}" for c in "abcdefgh" for d in "xyz"]

FAKE_RATING_PEER = textwrap.dedent(
    '''
    """A stand-in peer for the text protocol: noisy ratings around 3.5, 2 epochs."""
    import numpy as np

    from benchmarks.peers.adapters.common import Recorder, adapter_args, read_split

    args = adapter_args("fake rating peer", ["convmf"])
    split = read_split(args.split)
    assert split.documents is not None and len(split.documents["words"]) == split.n_items
    rng = np.random.default_rng(args.seed)
    recorder = Recorder("fakepeer", args.model, split.protocol, args.sets, {"fakepeer": "0"})
    for _ in range(args.epochs):
        with recorder.training():
            pass
        recorder.checkpoint(**{f"{w}_pred": 3.5 + rng.normal(0, 0.5, len(split.parts[w]))
                               for w in ("valid", "test")})
    recorder.write(args.out)
    '''
)


def tiny_rated_documents(seed: int = 0) -> Interactions:
    """Explicit ratings with a plot text for all but the last two items."""
    clicks = synthetic_clicks(N_USERS, N_ITEMS, density=0.2, seed=seed)
    rng = np.random.default_rng(seed)
    texts = {
        item_id: {"text": " ".join(rng.choice(WORDS, size=int(rng.integers(5, 30))))}
        for item_id in clicks.item_ids.ids[:-2]
    }
    return dataclasses.replace(
        clicks,
        ratings=rng.integers(1, 6, len(clicks)).astype(np.float32),
        item_meta=texts,
    )


@pytest.fixture(scope="module")
def text_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("peers_text")
    return write_splits(tiny_rated_documents(), root, ("text",), SplitSettings())["text"]


def test_text_split_covers_users_and_items_and_carries_the_same_words(text_split: Path) -> None:
    meta = json.loads((text_split / "meta.json").read_text())
    sizes = meta["sizes"]
    total = sum(sizes.values())
    assert sizes["valid"] == pytest.approx(0.1 * total, abs=2)
    train = read_interactions(text_split, "train", explicit=True)
    # ConvMF's split: every user and item has a training rating.
    assert set(train.users) == set(range(meta["n_users"]))
    assert set(train.items) == set(range(meta["n_items"]))

    documents = json.loads((text_split / "documents.json").read_text())
    texts, words = documents["texts"], documents["words"]
    assert len(texts) == len(words) == meta["n_items"]
    assert texts[-2:] == [None, None] and words[-2:] == ["", ""]
    # The peer's words are genrec's own Sec. 4.1 preprocessing of the raw text.
    vocab = build_vocabulary([t for t in texts if t], 8000, 0.5)
    expected = [" ".join(vocab[i - 1] for i in s) for s in encode([t or "" for t in texts], vocab)]
    assert words == expected
    assert meta["n_items_with_text"] == sum(bool(w) for w in words)
    # genrec reads the raw text back as item_meta, where its ConvMF looks for it.
    assert train.item_meta["0"]["text"] == texts[0]
    assert str(meta["n_items"] - 1) not in train.item_meta


def test_text_split_refuses_data_without_documents(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GENREC_DATA_DIR", raising=False)
    data = dataclasses.replace(tiny_rated_documents(), item_meta=None)
    with pytest.raises(SplitWriteError, match="item documents"):
        write_splits(data, tmp_path, ("text",), SplitSettings())


def test_genrec_convmf_on_the_text_split(text_split: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    small = {**CONVMF_SHARED, "emb_dim": "8", "filters": "4", "proj_dim": "8", "factors": "4"}
    result = run_genrec(text_split, "convmf", epochs=2, every=1, seed=0, out=tmp_path, extra=small)
    assert result["protocol"] == "text" and result["epochs_trained"] == 2
    assert result["settings"]["biases"] == "false" and result["settings"]["cnn_epochs"] == "1"
    row = score_run(tmp_path, text_split)
    assert row.peer == "genrec" and row.best_epoch in (1, 2)
    assert 0.0 < row.metrics["mae"] <= row.metrics["rmse"] < 4.0


class FakeConvMF:
    """What the adapter reads of a Cornac ConvMF: the factor tables U and V."""

    def __init__(self, n_users: int, n_items: int, k: int = 3) -> None:
        self.U = np.ones((n_users, k))
        self.V = np.ones((n_items, k))


def test_cornac_convmf_hook_books_one_epoch_per_call_and_predicts_u_dot_v(
    text_split: Path,
) -> None:
    split = read_split(text_split)
    users = np.arange(split.n_users)
    items = np.arange(split.n_items)
    model = FakeConvMF(split.n_users, split.n_items)
    recorder = Recorder("cornac", "convmf", "text", {}, {})
    hook = cornac_adapter.ConvMFHook(
        recorder,
        lambda: recorder.checkpoint(
            **cornac_adapter.convmf_predictions(model, split, users, items)
        ),
    )
    # As Cornac's _fit_convmf: per outer epoch, U/V updates, then trange(cnn_epochs).
    for epoch in (1, 2, 3):
        model.U[:] = epoch  # "eq. 8"
        for _ in hook(2):  # the CNN passes
            pass
    hook.book(0)
    assert [c["epoch"] for c in recorder.checkpoints] == [1, 2, 3]
    assert recorder.epochs_trained == 3
    seconds = [c["seconds"] for c in recorder.checkpoints]
    assert seconds == sorted(seconds) and recorder.train_seconds >= seconds[-1]
    # Each checkpoint's predictions are u . v as they were at that call: k * epoch.
    test = np.stack(recorder.arrays["test_pred"])
    np.testing.assert_allclose(test[:, 0], [3.0, 6.0, 9.0])
    assert test.shape == (3, len(split.parts["test"]))


def test_cornac_convmf_settings_take_the_shared_budget() -> None:
    params = cornac_adapter.settings("convmf", 4, 7, 1, {**CONVMF_SHARED, "cnn_epochs": "2"})
    assert params["n_epochs"] == 4 and params["seed"] == 7
    assert (params["k"], params["lambda_u"], params["lambda_v"]) == (50, 10.0, 10.0)
    assert params["cnn_epochs"] == 2 and params["max_len"] == 300
    assert params["give_item_weight"] is False  # eq. 7's single lambda_V, as genrec's


def test_a_rating_peer_is_scored_on_the_text_protocol(
    text_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_rating_peer.py").write_text(FAKE_RATING_PEER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    peer = Library("fakepeer", sys.executable, "fake_rating_peer")
    extra = ["--set", "lambda_u=10"]
    out = run_job(peer, text_split, "convmf", 2, 1, 1, tmp_path / "run", timeout=60, extra=extra)
    row = score_run(out, text_split)
    assert row.protocol == "text" and row.epochs_trained == 2
    assert row.settings == {"lambda_u": "10"}
    assert row.metrics["rmse"] >= row.metrics["mae"] > 0.0


def test_convmf_peer_runs_from_the_tf_venv_and_settings_are_checked() -> None:
    assert Job("text", "convmf", "cornac").runner == "cornac-tf"
    assert Job("text", "convmf", "genrec").runner == "genrec"
    assert Job("strong", "mult-vae", "cornac").runner == "cornac"
    args = parse(["--protocols", "text", "--convmf-set", "cnn_epochs=2"])
    assert args.convmf_set == ["cnn_epochs=2"]
    with pytest.raises(SystemExit):
        parse(["--convmf-set", "no_such_setting=1"])


def test_text_stats_reads_a_written_split(text_split: Path) -> None:
    torch.set_num_threads(1)
    lengths = document_lengths(text_split, max_len=300)
    assert (
        lengths["documents"]
        == json.loads((text_split / "meta.json").read_text())["n_items_with_text"]
    )
    assert 0 < lengths["median"] <= lengths["longest"] <= 300
    assert 0.0 < lengths["padding_share"] < 1.0
    rows = untrained_rows(text_split)
    assert rows["rows"] == lengths["documents"]
    assert 0.0 < rows["norm_of_mean_row"] <= rows["mean_row_norm"]  # triangle inequality
