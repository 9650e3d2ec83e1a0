import time

from raylayers import timings


def test_spans_and_running_totals_are_written_only_after_use(tmp_path):
    with timings.span("before"):  # not recorded: no folder yet
        pass
    timings.use(tmp_path)
    try:
        with timings.span("model build", stage="stage1"):
            time.sleep(0.01)
        for _ in range(3):
            with timings.adding("training steps"):
                time.sleep(0.002)
        timings.flush_totals(stage="stage1")
        timings.record("worker process", timings.process_started(), time.time())
    finally:
        timings.use(None)
    with timings.span("after"):
        pass
    spans = timings.read(tmp_path)
    assert [s["span"] for s in spans] == ["model build", "training steps", "worker process"]
    build, steps, process = spans
    assert build["stage"] == "stage1" and build["seconds"] >= 0.01 and build["end"] >= build["start"]
    assert steps["count"] == 3 and steps["summed"] and steps["seconds"] >= 0.006
    assert process["seconds"] > 0  # this process started before now
    assert timings.read(tmp_path / "nothing") == []
