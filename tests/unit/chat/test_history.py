"""History in SQLite: per room, paged backwards by id, still there after reopening."""

from __future__ import annotations

import pytest

from projects.chat.history import HistoryStore

pytestmark = pytest.mark.timeout(60)


def fill(store: HistoryStore, n: int) -> None:
    for i in range(n):
        store.append("a" if i % 2 == 0 else "b", f"user{i % 3}", f"msg {i}", float(i))
    store.commit()


def test_pages_walk_backwards_through_one_room_oldest_first_within_a_page(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    fill(store, 50)  # room a holds msg 0, 2, ..., 48
    newest = store.page("a", limit=10)
    assert [m["text"] for m in newest] == [f"msg {i}" for i in range(30, 50, 2)]
    older = store.page("a", before=newest[0]["id"], limit=10)
    assert [m["text"] for m in older] == [f"msg {i}" for i in range(10, 30, 2)]
    seen, before = [], None
    while page := store.page("a", before=before, limit=7):
        seen = page + seen
        before = page[0]["id"]
    assert [m["text"] for m in seen] == [f"msg {i}" for i in range(0, 50, 2)]
    assert not store.has_older("a", seen[0]["id"]) and store.has_older("a", seen[1]["id"])
    assert all(m["room"] == "a" for m in seen)
    store.close()


def test_history_survives_reopening_the_file(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    fill(store, 6)
    store.close()
    again = HistoryStore(tmp_path / "h.sqlite3")
    assert [m["text"] for m in again.page("b")] == ["msg 1", "msg 3", "msg 5"]
    again.close()


def test_uncommitted_writes_are_visible_to_the_writer_and_committed_by_close(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.append("a", "u", "pending", 0.0)
    assert store.page("a")[-1]["text"] == "pending"
    store.close()
    assert HistoryStore(tmp_path / "h.sqlite3").page("a")[-1]["text"] == "pending"
