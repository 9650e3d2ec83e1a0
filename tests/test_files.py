"""Files rewritten during a run are read whole, never torn, however the reads and writes interleave."""

import json
import threading

from raylayers.files import write_text_atomic
from raylayers.search.results import read_results, write_results


def _rows(count: int) -> list[dict]:
    return [{"trial_id": f"t{i}", "key": f"layers={i}|connector=mlp2x_gelu", "layers": [i], "status": "completed",
             "score": i / 100, "order": i, "note": "x" * (i * 37 % 500)} for i in range(count)]


def test_reads_of_results_parquet_while_it_is_rewritten_always_see_a_whole_table(tmp_path):
    """The search's writer replaces the file as each trial ends; a user (or the searcher) polls it meanwhile. Each
    read must return one complete version: as many rows as some write wrote, never an error."""
    path = tmp_path / "results.parquet"
    sizes = list(range(1, 301))  # 300 versions of growing size
    done, reading = threading.Event(), threading.Event()

    def writer():
        reading.wait(60)
        try:
            for size in sizes:
                write_results(path, _rows(size))
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    while not done.is_set() or not seen:
        reading.set()
        rows = read_results(path)  # [] until the first version exists
        if rows:
            assert [r["order"] for r in rows] == list(range(len(rows)))
            seen.append(len(rows))
    thread.join()
    assert set(seen) <= set(sizes)
    assert len(read_results(path)) == sizes[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]  # no temporary file left behind


def test_json_written_atomically_is_always_whole(tmp_path):
    path = tmp_path / "search_summary.json"
    done = threading.Event()

    def writer():
        for size in range(200):
            write_text_atomic(path, json.dumps({"size": size, "rows": ["y" * 50] * size}))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        if path.exists():
            data = json.loads(path.read_text())
            assert len(data["rows"]) == data["size"]
    thread.join()
    assert json.loads(path.read_text())["size"] == 199
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search_summary.json"]
