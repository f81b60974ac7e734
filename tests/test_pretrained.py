"""The models that work out of the box, offline."""

from __future__ import annotations

from advlens.data import load_sample_photos
from advlens.predict import top_k
from advlens.training.evaluate import clean_accuracy


def test_efficientnet_lite0_ranks_the_known_classes_first(lite0):
    photos = load_sample_photos()
    preds = dict(zip(photos.item_names, top_k(lite0, photos.images, 5)))
    assert preds["chelsea"].names[0] == "Egyptian cat"
    assert preds["coffee"].names[0] == "espresso"
    assert len(preds["coffee"].probs) == 5 and abs(sum(preds["coffee"].probs) - 1) < 0.1


def test_shipped_digits_model_reaches_97_percent(digits_model, digits_test):
    acc = clean_accuracy(digits_model, digits_test.pixels, digits_test.labels)
    assert acc >= 0.97, acc
    assert digits_model.checkpoint_meta["metrics"]["test_accuracy"] >= 0.97
    assert digits_model.checkpoint_meta["recipe"]["objective"] == "standard"
