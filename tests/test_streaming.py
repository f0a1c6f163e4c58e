"""The report's numbers, gathered in one streaming pass, equal those of the whole-list functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pairsynth.alignment import qa
from pairsynth.alignment.qa_report import SWEEP_THRESHOLDS, JudgeSetup, QaReport, QaRow, summarize
from pairsynth.run import count_states
from pairsynth.stages import CaptionState


def random_scores(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    values = list(np.round(rng.uniform(0, 100, n), 4)) + [0.0, 100.0, 20.0, 20.0]
    return [float(v) for v in values]


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_score_counts_give_the_exact_percentiles_histogram_and_sweep(n):
    values = random_scores(n, n)
    counts = qa.ScoreCounts()
    for value in values:
        counts.add(value)
    for q in (0, 5, 50, 95, 100):
        assert counts.percentile(q) == pytest.approx(float(np.percentile(values, q)), abs=1e-9)
    assert counts.mean() == pytest.approx(float(np.mean(values)))
    assert counts.histogram() == qa.score_histogram(values)
    thresholds = SWEEP_THRESHOLDS + [20.5, 27.3, 99.99995]
    assert counts.sweep(len(values) + 3, thresholds) == qa.threshold_sweep(values, len(values) + 3, thresholds)


@pytest.mark.parametrize(("n", "k"), [(0, 3), (3, 12), (7, 2), (300, 12)])
def test_the_gallery_heaps_pick_what_the_sorted_list_picks_ties_included(n, k):
    values = [float(v) for v in np.random.default_rng(n).integers(0, 5, n)]  # many ties
    extremes = qa.Extremes(k)
    for index, value in enumerate(values):
        extremes.add(value, index)
    assert extremes.worst_and_best() == qa.worst_and_best(values, k)


def rows(n: int) -> list[QaRow]:
    rng = np.random.default_rng(3)
    made = []
    for i in range(n):
        modality = ["image", "audio", "triplet", None][i % 4]
        scores = {}
        if modality in ("image", "triplet"):
            scores["clip"] = {"score": round(float(rng.uniform(0, 60)), 4), "rank": int(rng.integers(1, 4))}
        if modality in ("audio", "triplet") and i % 3:
            scores["clap"] = {"score": round(float(rng.uniform(0, 60)), 4), "rank": None,
                              "caption_truncated": i % 5 == 0}
        reason = "unreadable" if modality is None else ("accepted" if i % 3 == 0 else "below_threshold")
        made.append(QaRow(key=f"k{i}", caption=f"caption {i % 9}" if modality else "", source=f"src{i}",
                          modality=modality, group=f"g{i % 5}", scores=scores, passed=reason == "accepted",
                          reason=reason, flags=["near_duplicate"] * (i % 7 == 0), usable=i % 11 != 0))
    return made


def reference_judge(rows_: list[QaRow], kind: str, threshold: float) -> dict:
    """The numbers as the list-based report computed them before it streamed."""
    mine = [r for r in rows_ if r.modality in {"clip": ("image", "triplet"), "clap": ("audio", "triplet")}[kind]]
    scored = [r.scores[kind] for r in mine if kind in r.scores]
    usable = [r.scores[kind]["score"] for r in mine if kind in r.scores and r.usable]
    values = np.array([s["score"] for s in scored])
    ranks = [s["rank"] for s in scored if s.get("rank") is not None]
    return {"scored": len(scored), "pairs": len(mine), "median_score": round(float(np.median(values)), 4),
            "p95_score": round(float(np.percentile(values, 95)), 4), "mean_score": round(float(values.mean()), 4),
            "reached_threshold": sum(v >= threshold for v in usable),
            "histogram": dict(zip(("edges", "counts"), qa.score_histogram(values))),
            "sweep": qa.threshold_sweep(usable, len(mine), SWEEP_THRESHOLDS),
            "median_rank": float(np.median(ranks)) if ranks else None}


def test_a_streamed_summary_equals_the_list_based_numbers():
    made = rows(403)
    judges = {"clip": JudgeSetup(kind="clip", model="m", threshold=30.0),
              "clap": JudgeSetup(kind="clap", model="m", threshold=25.0)}

    class OnePassOnly:  # a stream that can be read once: the summary must not need a second pass
        def __init__(self):
            self.used = False

        def __iter__(self):
            assert not self.used, "read twice"
            self.used = True
            return iter(made)

    summary = summarize(QaReport(title="t", source={}, rows=OnePassOnly(), judges=judges))
    for kind, setup in judges.items():
        expected = reference_judge(made, kind, setup.threshold)
        got = summary["judges"][kind]
        for name, value in expected.items():
            assert (got[name]["kept"] if name == "sweep" else got[name]) == value, (kind, name)
    groups = qa.group_stats([r.group for r in made], [r.passed for r in made], [r.primary_score for r in made],
                            [r.primary_rank for r in made])
    assert [g["group"] for g in summary["per_group"]] == [g.group for g in groups]
    assert [g["mean_score"] for g in summary["per_group"]] == [round(g.mean_score, 4) for g in groups]
    assert summary["candidates"] == 403 and summary["accepted"] == sum(r.passed for r in made)
    assert summary["flags"] == {"near_duplicate": sum(i % 7 == 0 for i in range(403))}
    assert len(summary["unreadable"]) == sum(r.reason == "unreadable" for r in made)


def test_group_tally_orders_ties_as_group_stats_and_counts_exactly():
    rng = np.random.default_rng(3)
    groups = [f"g{int(i)}" for i in rng.integers(0, 40, 600)]  # many equal pass rates and sizes
    passed = [bool(p) for p in rng.integers(0, 2, 600)]
    scores = [None if i % 9 == 0 else float(np.round(rng.uniform(0, 100), 4)) for i in range(600)]
    ranks = [None if i % 5 == 0 else int(rng.integers(1, 4)) for i in range(600)]
    tally = qa.GroupTally()
    for row in zip(groups, passed, scores, ranks):
        tally.add(*row)
    assert len(tally) == len(set(groups))
    got, expected = tally.stats(), qa.group_stats(groups, passed, scores, ranks)
    assert [(g.group, g.pairs, g.passed, g.top1) for g in got] == [(g.group, g.pairs, g.passed, g.top1) for g in expected]
    assert [g.mean_score for g in got] == pytest.approx([g.mean_score for g in expected], rel=1e-12)  # a running sum


def test_summary_json_streams_per_group_rows_and_reads_back_as_one_list(tmp_path):
    from pairsynth.writers.base import write_json

    class Rows:  # a sized iterable that is not a list, as the report's per-group rows
        def __len__(self):
            return 3

        def __iter__(self):
            return iter({"group": f"g{i}", "pairs": i} for i in range(3))

    class Empty(Rows):
        def __len__(self):
            return 0

    value = {"a": 1, "per_group": Rows(), "nested": {"none": Empty(), "x": [1, 2]}, "text": "é"}
    write_json(tmp_path / "s.json", value)
    plain = {"a": 1, "per_group": list(Rows()), "nested": {"none": [], "x": [1, 2]}, "text": "é"}
    assert (tmp_path / "s.json").read_text("utf-8") == json.dumps(plain, indent=2, ensure_ascii=False)
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(tmp_path / "bad.json", {"x": object()})


def test_resume_counts_states_from_a_generator_in_one_pass(tmp_path):
    from pairsynth.writers import ManifestWriter

    manifest = ManifestWriter(tmp_path)
    for i in range(50):
        manifest.write_row({"key": f"k{i}", "caption": f"c{i % 5}", "accepted": i % 2 == 0})
    manifest.commit(0)
    stream = manifest.iter_rows()
    assert not isinstance(stream, list)
    states = count_states({f"c{j}": CaptionState(caption=f"c{j}", index=j) for j in range(5)}, stream, lambda row: row["caption"])
    assert [(s.attempts, s.accepted) for s in states.values()] == [(10, 5 if j % 2 == 0 else 5) for j in range(5)]
    assert next(stream, None) is None  # consumed in one pass


def test_the_run_report_reads_the_manifest_row_by_row(tmp_path):
    """write_run_report takes a function that re-reads the manifest; it never needs a list."""
    from pairsynth.run import RunSummary
    from pairsynth.run_report import write_run_report

    lines = [{"key": f"k{i}", "caption": f"c{i % 3}", "modality": "image", "model": "m", "accepted": False,
              "reason": "below_threshold", "detail": "", "scores": {"clip": {"model": "m", "score": float(i)}}}
             for i in range(30)]
    passes = []

    def read():
        passes.append(1)
        yield from lines

    summary = RunSummary(out_dir=tmp_path, k=1, captions=[], elapsed_s=0.0)
    page = write_run_report(tmp_path, read, summary, {"clip": 10.0})
    assert len(passes) == 2  # what the manifest holds, then the numbers (and scores.jsonl)
    data = json.loads((page.parent / "summary.json").read_text())
    assert data["candidates"] == 30 and data["judges"]["clip"]["reached_threshold"] == 20
    assert data["generation"] == {"model": ["m"]}
    assert len((page.parent / "scores.jsonl").read_text().splitlines()) == 30
