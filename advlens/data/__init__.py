"""Data: one interface (:class:`ImageDataset`) for every dataset, uploads and sample photos."""

from .base import DataError, ImageDataset, to_float
from .catalog import DATASETS, DatasetInfo, list_datasets, load_dataset
from .images import UPLOAD_EXTENSIONS, decode_image, encode_png, fit_image, load_upload, resize_batch, to_uint8_hwc
from .offline import SAMPLE_PHOTOS, load_digits, load_sample_photos, sample_photo

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "ImageDataset",
    "SAMPLE_PHOTOS",
    "UPLOAD_EXTENSIONS",
    "decode_image",
    "encode_png",
    "fit_image",
    "list_datasets",
    "load_dataset",
    "load_digits",
    "load_sample_photos",
    "load_upload",
    "resize_batch",
    "sample_photo",
    "to_float",
    "to_uint8_hwc",
]
