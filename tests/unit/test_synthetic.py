"""The smoke generators write only into folders they own, and never over a user's data."""

import pytest

from shared.synthetic import MARKER, NotOurFolderError, ensure_generated


def _writer(calls):
    def write(out, **settings):
        calls.append(settings)
        (out / "train.csv").write_text(f"n\n{settings['n']}\n")

    return write


def test_generates_into_a_missing_or_empty_folder_and_reuses_it(tmp_path):
    calls = []
    for folder in (tmp_path / "new", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        ensure_generated(folder, _writer(calls), n=3)
        ensure_generated(folder, _writer(calls), n=3)
        assert (folder / MARKER).is_file() and (folder / "train.csv").read_text() == "n\n3\n"
    assert len(calls) == 2  # once per folder: the second call reuses


def test_changed_settings_regenerate_our_own_folder_from_scratch(tmp_path):
    calls = []
    ensure_generated(tmp_path / "d", _writer(calls), n=3)
    (tmp_path / "d" / "folds.csv").write_text("stale")
    ensure_generated(tmp_path / "d", _writer(calls), n=4)
    assert (tmp_path / "d" / "train.csv").read_text() == "n\n4\n"
    assert not (tmp_path / "d" / "folds.csv").exists()


def test_a_folder_of_someone_elses_files_is_refused_and_left_untouched(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "train-metadata.csv").write_text("isic_id,target\nMY_REAL,0\n")
    with pytest.raises(NotOurFolderError, match=str(user)):
        ensure_generated(user, _writer([]), n=3)
    assert [p.name for p in user.iterdir()] == ["train-metadata.csv"]
    assert (user / "train-metadata.csv").read_text() == "isic_id,target\nMY_REAL,0\n"


@pytest.mark.parametrize(
    "module",
    [
        "shared.datasets.isic2024_synthetic",
        "projects.retrieval_qa.synthetic",
        "projects.captioning.synthetic",
    ],
)
def test_every_project_generator_goes_through_the_guard(module, tmp_path):
    import importlib

    user = tmp_path / "data"
    user.mkdir()
    (user / "train.csv").write_text("id\n1\n")
    with pytest.raises(NotOurFolderError):
        importlib.import_module(module).ensure_dataset(user, seed=0)
    assert (user / "train.csv").read_text() == "id\n1\n"
