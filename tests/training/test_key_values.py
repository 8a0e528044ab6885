"""KEY=VALUE pairs: values may contain '=', later keys win, malformed entries are CLI errors."""

from __future__ import annotations

import pytest

from training.key_values import parse_pairs


def test_pairs_split_on_the_first_equals_sign_and_later_keys_win() -> None:
    assert parse_pairs(["lr=0.01", "note=a=b", "lr=0.1"]) == {"lr": "0.1", "note": "a=b"}


@pytest.mark.parametrize("bad", ["lr", "=0.1"])
def test_a_malformed_pair_names_the_flag(bad: str) -> None:
    with pytest.raises(SystemExit, match="--option expects key=value"):
        parse_pairs([bad], "--option")
