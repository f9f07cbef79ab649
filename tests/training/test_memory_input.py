"""Training splits read into memory (train.input: memory) that do not fit: one clear error that
names the way out (streaming), exit 2, no traceback, and the prepared data left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from dltrain.data.store import PreparedDataset, open_store
from tests.conftest import RecipeWriter, invoke


def test_splits_that_do_not_fit_in_memory_point_to_streaming(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_recipe(idx_folder)
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    splits = open_store(tmp_path / "data" / "tiny").manifest.splits
    examples = splits["train"].num_examples + splits["validation"].num_examples
    whole = PreparedDataset.load_split

    def out_of_memory(self: PreparedDataset, split: str, **kwargs: bool) -> object:
        if split == "validation":  # the training split was read: fails as a real cap would
            raise MemoryError("Unable to allocate 3.09 GiB for an array")
        return whole(self, split, **kwargs)

    monkeypatch.setattr(PreparedDataset, "load_split", out_of_memory)
    code, _, err = invoke("train", "--set", "train.input=memory")
    assert code == 2, err
    assert f"{examples:,} examples" in err and "`train.input: stream`" in err
    assert "Traceback" not in err and "internal error" not in err
    monkeypatch.setattr(PreparedDataset, "load_split", whole)
    assert len(open_store(tmp_path / "data" / "tiny").load_split("train")[1]) > 0  # verified
