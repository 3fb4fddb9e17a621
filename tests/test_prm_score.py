"""Scoring (prmkit.prm.score): PRMs sharing a backbone score in one pass as each alone."""
from __future__ import annotations

import pytest
from helpers import char_tokenizer, flawed_toy_solutions

from prmkit.prm.model import build_prm
from prmkit.prm.score import same_backbone, score, score_many


def test_prms_sharing_a_backbone_score_in_one_pass_as_each_alone(tmp_path, tiny_lm):
    import torch

    first, second, other = (build_prm(str(tiny_lm), char_tokenizer(), seed=0) for _ in range(3))
    with torch.no_grad():
        for p in second.module.score.parameters():  # another head on the same backbone
            p.normal_()
        other.module.model.norm.weight.add_(0.5)  # a backbone of its own
    rows = flawed_toy_solutions(6, seed=7)
    problems, steps = [r["problem"] for r in rows], [r["steps"] for r in rows]
    assert same_backbone([first, second]) and not same_backbone([first, other])
    for prms in ({"a": first, "b": second}, {"a": first, "c": other}):
        together = score_many(problems, steps, prms)
        for name, prm in prms.items():
            alone = score(problems, steps, prm)
            assert [x for s in together[name] for x in s] == \
                pytest.approx([x for s in alone for x in s], abs=1e-6)
    assert together["a"] != together["c"]

