"""MPO's data selection: a generate stage keeps only the pairs whose score gap is largest (large_gap_share)."""

from __future__ import annotations

import pytest

from harness.stages.generate import GenerateArgs, largest_gaps


def pairs(*gaps: tuple[float, float]) -> list[dict]:
    return [{"id": i, "chosen_score": c, "rejected_score": r} for i, (c, r) in enumerate(gaps)]


def test_keeps_the_largest_gaps_in_their_own_order():
    # gaps 1.5, 0.25, 3.0, 0.5, 1.0 (learned-reward logits can be negative)
    rows = pairs((1.0, -0.5), (0.5, 0.25), (2.0, -1.0), (0.0, -0.5), (0.75, -0.25))
    assert [p["id"] for p in largest_gaps(rows, 0.4)] == [0, 2]  # ceil(0.4 x 5) = 2
    assert [p["id"] for p in largest_gaps(rows, 0.5)] == [0, 2, 4]  # ceil(2.5) = 3: gap 1.0 next
    assert largest_gaps(rows, 1.0) == rows and largest_gaps(rows, None) == rows


def test_a_tie_at_the_cut_goes_to_the_earlier_pair():
    rows = pairs((1.0, 0.0), (0.5, 0.0), (1.0, 0.5), (0.0, -0.5))  # gaps 1, 0.5, 0.5, 0.5
    assert [p["id"] for p in largest_gaps(rows, 0.5)] == [0, 1]


def test_the_share_is_checked_with_the_stage_args():
    from harness.config.typed import build

    with pytest.raises(ValueError, match="large_gap_share"):
        build(GenerateArgs, {"large_gap_share": 0.0}, "stage.args")
    assert build(GenerateArgs, {"large_gap_share": 0.25}, "stage.args").large_gap_share == 0.25
