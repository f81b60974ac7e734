"""The one subset rule: which n images of a split every evaluation, certification and analysis uses."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from advlens.data import DataError, load_dataset
from advlens.data.folder import load_image_folder
from advlens.data.subset import choose_images, parse_indices, read_indices_file, stratified_order

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_sorted_folder(root: Path, classes=CIFAR_CLASSES, per_class: int = 6, seed: int = 0) -> Path:
    """A test split of ``root/test/<class>/<file>.png``, files written in a shuffled order so that the
    file system's listing order is not the sorted one."""
    rng = np.random.default_rng(seed)
    jobs = [(c, k) for c in classes for k in range(per_class)]
    random.Random(seed).shuffle(jobs)
    for c, k in jobs:
        folder = root / "test" / c
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{k:04d}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return root


def test_a_class_sorted_folder_gives_a_stratified_subset(tmp_path):
    ds = load_image_folder(class_sorted_folder(tmp_path), split="test")
    assert ds.labels[:6].tolist() == [0] * 6  # the loader sorts by class: the first 10 would be 2 classes
    subset = choose_images(ds, 10)
    assert subset.rule == "stratified"
    assert sorted(ds.labels[subset.indices].tolist()) == list(range(10))  # one of each class
    assert subset.class_counts == (1,) * 10 and subset.warning() is None
    assert "seed 0" in subset.describe() and "10 of 10 classes" in subset.describe()
    # each image is named by its dataset index and its file
    first = subset.image_name(0)
    assert first["file"] == ds.item_names[first["dataset_index"]]
    # 20 images: two of each class; the next window is disjoint and stratified too
    again = choose_images(ds, 20)
    assert again.class_counts == (2,) * 10
    assert again.indices[:10].tolist() == subset.indices.tolist()  # a longer subset extends a shorter one
    held_out = choose_images(ds, 20, offset=20)
    assert held_out.class_counts == (2,) * 10
    assert not set(held_out.indices.tolist()) & set(again.indices.tolist())


def test_a_folder_named_like_its_split_is_not_named_twice(tmp_path):
    named = load_image_folder(class_sorted_folder(tmp_path / "test"), split="test")
    assert choose_images(named, 10).rule_text() == "a class-stratified sample of 10 images of the test split, seed 0"
    other = load_image_folder(class_sorted_folder(tmp_path / "cifar_jpeg"), split="test")
    assert "of the cifar_jpeg test split" in choose_images(other, 10).rule_text()


def test_the_stratified_order_does_not_depend_on_the_file_system(tmp_path):
    a = load_image_folder(class_sorted_folder(tmp_path / "a", seed=1), split="test")
    b = load_image_folder(class_sorted_folder(tmp_path / "b", seed=2), split="test")
    pick_a, pick_b = choose_images(a, 15), choose_images(b, 15)
    assert [a.item_names[i] for i in pick_a.indices] == [b.item_names[i] for i in pick_b.indices]
    assert choose_images(a, 15, seed=1).indices.tolist() != pick_a.indices.tolist()  # the seed matters


def test_unequal_classes_are_sampled_in_proportion():
    labels = torch.tensor([0] * 700 + [1] * 200 + [2] * 100)
    order = stratified_order(labels)
    assert sorted(order.tolist()) == list(range(1000))
    for n in (10, 50, 100):
        counts = torch.bincount(labels[order[:n]], minlength=3).tolist()
        assert all(abs(c - n * share) <= 1 for c, share in zip(counts, (0.7, 0.2, 0.1))), (n, counts)


def test_an_official_order_gives_the_first_n():
    digits = load_dataset("digits")
    subset = choose_images(digits, 40, offset=5)
    assert subset.rule == "first" and subset.indices.tolist() == list(range(5, 45))
    assert "the first 40 images" in subset.describe() and "official order" in subset.describe()


@pytest.mark.shared_data
def test_the_mnist_subset_is_the_first_n_in_the_official_order():
    if not (MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("../shared/data/mnist is absent")
    test = load_dataset("mnist", root=MNIST)
    subset = choose_images(test, 100)
    assert subset.rule == "first" and subset.indices.tolist() == list(range(100))
    assert test.labels[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]  # the official test order
    assert subset.classes_covered == 10


def test_the_sample_sets_are_stratified_and_a_short_subset_warns():
    samples = load_dataset("cifar10_samples")
    subset = choose_images(samples, 20)
    assert subset.rule == "stratified" and subset.class_counts == (2,) * 10
    few = choose_images(samples, 3)
    assert few.classes_covered == 3
    assert "3 of the 10 classes" in few.warning() and "smaller than the number of classes" in few.warning()


def test_an_evaluation_spec_repeats_a_report_subset_exactly(tmp_path):
    from advlens.cli.evaluate import build_spec, register
    from advlens.evaluation.jobs import images

    root = class_sorted_folder(tmp_path, per_class=4)
    parser = __import__("argparse").ArgumentParser()
    register(parser.add_subparsers())
    argv = ["evaluate", "--model", "cifar10_resnet20", "--dataset", "folder", "--root", str(root), "--eps", "1/255"]
    x, y, first = images(build_spec(parser.parse_args([*argv, "--n", "12", "--offset", "7"])))
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"subset": first.to_dict()}))
    x2, y2, again = images(build_spec(parser.parse_args([*argv, "--indices", str(report)])))
    assert again.rule == "indices" and again.indices.tolist() == first.indices.tolist()
    assert torch.equal(x, x2) and torch.equal(y, y2) and "12 given images" in again.describe()


def test_given_indices_are_checked_and_read_back(tmp_path):
    ds = load_dataset("digits")
    subset = choose_images(ds, indices=[5, 1, 300])
    assert subset.rule == "indices" and subset.indices.tolist() == [5, 1, 300]
    for bad, message in (([1, 1], "twice"), ([360], "out of range"), ([], "empty"), ([1.5], "whole numbers")):
        with pytest.raises(DataError, match=message):
            choose_images(ds, indices=bad)
    with pytest.raises(DataError, match="past the end"):
        choose_images(ds, 10, offset=360)
    assert parse_indices("3, 7\n11 2") == [3, 7, 11, 2]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"subset": choose_images(ds, 12, offset=3).to_dict()}))
    assert read_indices_file(report) == list(range(3, 15))  # a report's subset repeats exactly
    for text in ("3 -1", "1e3", '[1, 2, "x"]', '{"a": 1}'):
        with pytest.raises(DataError):
            parse_indices(text)
    with pytest.raises(DataError, match="no indices file"):
        read_indices_file(tmp_path / "missing.txt")


def test_evaluate_prints_the_rule_and_the_class_counts_and_names_each_image(tmp_path, monkeypatch, capsys):
    from advlens.cli import main

    monkeypatch.setenv("ADVLENS_HOME", str(tmp_path / "home"))
    root = class_sorted_folder(tmp_path / "folder", per_class=2)
    out = tmp_path / "r.json"
    common = ["evaluate", "--model", "cifar10_resnet20", "--dataset", "folder", "--root", str(root), "--eps", "1/255"]
    common += ["--suite", "quick", "--batch-size", "16"]
    assert main([*common, "--n", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a class-stratified sample of 10 images" in printed and "airplane 1, automobile 1" in printed
    report = json.loads(out.read_text())
    assert report["subset"]["rule"] == "stratified" and report["subset"]["class_counts"]["truck"] == 1
    images = report["results"][0]["images"]
    assert {im["file"].split("/")[0] for im in images} == set(CIFAR_CLASSES)
    assert all(report["subset"]["files"][k] == im["file"] for k, im in enumerate(images))
    assert "images: a class-stratified sample" in report["results"][0]["protocol"]
    # a subset with fewer images than classes warns
    assert main([*common, "--n", "3"]) == 0
    assert "warning: the images cover 3 of the 10 classes" in capsys.readouterr().out


def test_an_evaluation_queued_before_the_rule_resumes_on_its_first_n(tmp_path):
    from advlens.evaluation import EvalSpec
    from advlens.evaluation.jobs import images

    root = class_sorted_folder(tmp_path, per_class=4)
    old = {"models": ["cifar10_resnet20"], "dataset": "folder", "eps": [0.01], "n": 6, "root": str(root)}
    _, y, subset = images(EvalSpec.from_dict(old))
    assert subset.rule == "first" and subset.indices.tolist() == list(range(6)) and y.tolist() == [0] * 4 + [1] * 2
    assert "not a sample of the split" in subset.describe() and subset.warning()
    _, _, fresh = images(EvalSpec.from_dict({**EvalSpec.from_dict(old).to_dict(), "legacy_first_n": False}))
    assert fresh.rule == "stratified" and fresh.classes_covered == 6
