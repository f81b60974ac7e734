"""The loaders read the canonical formats, from fixtures the tests write themselves."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from advlens.data import DataError, ImageDataset, load_dataset, load_digits
from advlens.data.cifar import parse_batch
from advlens.data.idx import parse_idx


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_mnist(folder, n=7, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    sets = {}
    for split, stem in (("train", "train"), ("test", "t10k")):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, arr in (("images-idx3", imgs), ("labels-idx1", labels)):
            blob = idx_bytes(arr)
            name = f"{stem}-{kind}-ubyte"
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
        sets[split] = (imgs, labels)
    return sets


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_roundtrip(tmp_path, compress):
    sets = write_mnist(tmp_path, compress=compress)
    for split in ("train", "test"):
        ds = load_dataset("mnist", split=split, root=tmp_path)
        imgs, labels = sets[split]
        assert ds.shape == (1, 28, 28) and len(ds) == len(labels)
        assert torch.equal(ds.pixels[:, 0], torch.from_numpy(imgs))
        assert ds.labels.tolist() == labels.tolist()
        assert torch.allclose(ds.images[:, 0], torch.from_numpy(imgs).float() / 255)


def test_fashion_mnist_uses_fashion_class_names(tmp_path):
    write_mnist(tmp_path)
    ds = load_dataset("fashion_mnist", split="test", root=tmp_path)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_idx_rejects_truncated_and_bad_magic():
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    assert parse_idx(good).shape == (2, 3, 3)
    with pytest.raises(DataError, match="truncated"):
        parse_idx(good[:-1])
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01\x02\x03\x04" + good[4:])
    with pytest.raises(DataError, match="gzip"):
        parse_idx(b"\x1f\x8b" + b"garbage")


def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    # The canonical files are Python-2 pickles with byte-string keys.
    return (
        pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": []}, protocol=2),
        data,
        labels,
    )


def test_cifar_batches_archive(tmp_path):
    buf = io.BytesIO()
    expected = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            blob, data, labels = cifar_batch(3, i)
            expected[name] = (data, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    test = load_dataset("cifar10", split="test", root=tmp_path)
    data, labels = expected["test_batch"]
    assert test.shape == (3, 32, 32) and len(test) == 3
    # Canonical layout: 1024 red, then green, then blue values, row-major.
    assert torch.equal(test.pixels.reshape(3, -1), torch.from_numpy(data))
    assert test.labels.tolist() == labels
    train = load_dataset("cifar10", split="train", root=tmp_path)
    assert len(train) == 15 and train.class_names[0] == "airplane"


def test_cifar_loader_refuses_code_in_pickle():
    class Evil:
        def __reduce__(self):
            return (eval, ("1+1",))

    with pytest.raises(DataError, match="refusing"):
        parse_batch(pickle.dumps({b"data": Evil(), b"labels": []}), "evil_batch")


def test_image_folder_with_splits(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for split in ("train", "test"):
        for cls in ("cat", "airplane"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / split / cls / f"{i}.png")
                written[(split, cls, i)] = arr
    ds = load_dataset("folder", split="test", root=tmp_path)
    assert ds.class_names == ("airplane", "cat")  # sorted: the CIFAR-10 label order
    assert len(ds) == 4 and ds.shape == (3, 32, 32)
    assert ds.labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(ds.pixels[2].permute(1, 2, 0), torch.from_numpy(written[("test", "cat", 0)]))
    with pytest.raises(DataError, match="no 'val' folder"):
        load_dataset("folder", split="val", root=tmp_path)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("folder", root=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset("folder", root=tmp_path / "empty")
    with pytest.raises(DataError, match="needs a folder"):
        load_dataset("folder")


def test_offline_without_files_says_where_to_put_them():
    with pytest.raises(DataError) as info:
        load_dataset("mnist", split="test")
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "--download" in msg and "advlens_data" in msg
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", root="/nonexistent/cifar")


def test_digits_fixed_split():
    tr, te = load_digits("train"), load_digits("test")
    assert (len(tr), len(te)) == (1437, 360)
    assert tr.shape == te.shape == (1, 28, 28)
    assert te.images.min() >= 0 and te.images.max() <= 1 and te.images.max() > 0.9
    # The split is fixed: the same images come back every time.
    assert torch.equal(load_digits("test").pixels, te.pixels)
    assert sorted(torch.bincount(te.labels).tolist())[0] >= 35  # stratified


def test_dataset_item_out_of_range(digits_test: ImageDataset):
    with pytest.raises(DataError, match="out of range"):
        digits_test.item(len(digits_test))


@pytest.mark.shared_data
def test_shared_mnist_loads(shared_mnist):
    test = load_dataset("mnist", split="test", root=shared_mnist)
    train = load_dataset("mnist", split="train", root=shared_mnist)
    assert (len(train), len(test)) == (60000, 10000)
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the official order
    assert torch.bincount(train.labels).tolist()[1] == 6742
