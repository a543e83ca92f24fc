"""The accounting spool on a real filesystem: order, rotation, torn tails, reopening."""

from __future__ import annotations

from pathlib import Path

from daemons.store.spool import Spool, read_segment


def test_append_read_in_order_with_rotation(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=200)
    for i in range(10):
        spool.append([{"n": i, "pad": "x" * 40}, {"n": i, "second": True}])
    assert spool.pending_segments() > 1  # rotated
    seen = []
    while (item := spool.oldest()) is not None:
        path, records = item
        seen += [(r["n"], "second" in r) for r in records]
        spool.remove(path)
    assert seen == [(i, second) for i in range(10) for second in (False, True)]
    spool.close()


def test_torn_tail_is_not_a_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([{"a": 1}, {"a": 2}])
    spool.close()
    seg = next(tmp_path.glob("*.seg"))
    whole = seg.read_bytes()
    seg.write_bytes(whole + whole[:7])  # a write cut short
    assert read_segment(seg) == [{"a": 1}, {"a": 2}]
    seg.write_bytes(whole[:-1])  # a corrupt last record
    assert read_segment(seg) == [{"a": 1}]


def test_a_new_process_continues_after_the_old_segments(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append([{"k": "old"}])
    first.close()
    second = Spool(tmp_path)  # as after a restart
    second.append([{"k": "new"}])
    names = sorted(p.name for p in tmp_path.glob("*.seg"))
    assert names == ["000000000001.seg", "000000000002.seg"]
    _path, records = second.oldest() or (None, [])
    assert records == [{"k": "old"}]
