"""Training's checkpoint choice by an independent judge (issue 26): the judge picks the best
checkpoint, and it cannot change what is trained.

The judge here is a tiny fake (a fixed random projection of the ArcFace chip's pixels): the
mechanism, not MobileFaceNet, is under test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normface.encoders.judge import FaceJudge
from normface.evaluation import protocol, recipe
from normface.testing import synthetic
from normface.training import checkpoints
from normface.training.config import TrainConfig
from normface.training.trainer import Trainer

SIZE, FEAT, BATCH = 32, 16, 2
QUIET = dict(log_every=1, image_every=0, checkpoint_every=2, eval_batches=1, identity_eval_examples=2)


def projection_judge(seed: int) -> FaceJudge:
    projection = np.random.default_rng(seed).normal(size=(14 * 14 * 3, 24))
    return FaceJudge(lambda chips: chips[:, ::8, ::8, :].reshape(len(chips), -1) @ projection, f"fake{seed}")


def held_out(people: int = 4, per_person: int = 2, seed: int = 0) -> recipe.HeldOut:
    rng = np.random.default_rng(seed)
    n = people * per_person
    marks = synthetic.mean_landmarks(SIZE)[None] + rng.normal(0, 0.5, (n, 68, 2))
    photos = protocol.TestPhotos([f"p{i}" for i in range(n)], np.repeat(np.arange(people).astype(str), per_person),
                                 rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8), marks.astype(np.float32))
    return recipe.HeldOut(photos, rng.normal(size=(n, FEAT)).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32))


def data(seed=0, shuffle=True):
    return synthetic.synthetic_dataset(8, SIZE, BATCH, FEAT, seed=seed, shuffle=shuffle)


def make_trainer(model_dir, scorer, **overrides):
    config = TrainConfig(**{"steps": 4, "batch_size": BATCH, "lr_schedule": "constant", "eval_every": 2,
                            "identity_weight": 1.0, "seed": 3, **QUIET, **overrides})
    return Trainer(synthetic.tiny_model_config(), config, synthetic.mean_landmarks(SIZE), model_dir,
                   embed_fn=synthetic.fake_embed_fn(), scorer=scorer)


def test_judge_scorer_gives_the_selection_numbers():
    from normface.models import build_normalizer

    net = build_normalizer(synthetic.tiny_model_config(), synthetic.mean_landmarks(SIZE))
    scores = recipe.JudgeScorer(projection_judge(0), held_out())(net.model)
    assert set(scores) == set(recipe.JudgeScorer.KEYS)
    assert all(isinstance(v, float) and np.isfinite(v) for v in scores.values())
    assert 0.0 <= scores["cross_TAR@FAR0.1%_balanced"] <= 1.0
    assert checkpoints.selection_score({f"judge/{k}": v for k, v in scores.items()}) == pytest.approx(
        scores["cross_TAR@FAR0.1%_balanced"] + 1e-3 * scores["cross_mean_cosine"])


def test_the_judge_chooses_the_best_checkpoint_over_the_training_encoder(tmp_path, monkeypatch):
    """The judge's scores peak at step 4 while dlib's identity metric peaks at step 2 and 6: the
    judge's step is kept."""
    judged = iter([0.2, 0.6, 0.4])
    dlib = iter([dict(within=0.9, median=0.1), dict(within=0.1, median=0.9), dict(within=0.9, median=0.1)])
    monkeypatch.setattr(Trainer, "evaluate_identity", lambda self, ds: {**next(dlib), "pixel_l1": 0.1})

    def scorer(model):
        return {"cross_TAR@FAR0.1%_balanced": next(judged), "cross_mean_cosine": 0.5}

    make_trainer(tmp_path, scorer, steps=6).fit(data(), data(seed=3, shuffle=False))
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["step"] == 4 and best["judge/cross_TAR@FAR0.1%_balanced"] == 0.6
    assert checkpoints.find_checkpoint(tmp_path, "best").endswith("ckpt-4")


def test_the_judge_cannot_change_training(tmp_path):
    """Replacing the judge by a random network changes its scores, never the training losses,
    their gradients' effect (the weights after every update) or what the model computes."""
    held = held_out()
    runs = {}
    for name, judge in (("judge", projection_judge(0)), ("random", projection_judge(123))):
        scores = []
        scorer = recipe.JudgeScorer(judge, held)
        trainer = make_trainer(tmp_path / name, lambda model, s=scorer, out=scores: out.append(s(model)) or out[-1])
        history = trainer.fit(data(), data(seed=3, shuffle=False))
        runs[name] = (history, [v.numpy() for v in trainer.optimizer.variables], trainer.net.model, scores)
    (h1, opt1, m1, s1), (h2, opt2, m2, s2) = runs["judge"], runs["random"]
    assert len(s1) == len(s2) == 2 and s1 != s2  # the judges disagree...
    for key in [k for k in h1 if k.startswith(("train/", "validation/", "identity/")) and "per_second" not in k]:
        assert h1[key] == pytest.approx(h2[key], rel=1e-6), key  # ...the losses do not
    for a, b in zip(m1.weights, m2.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    for a, b in zip(opt1, opt2):  # Adam's moments: the same gradients went in
        np.testing.assert_allclose(a, b, atol=1e-6)
