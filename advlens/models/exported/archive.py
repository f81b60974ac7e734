"""Reading a ``.pt2`` archive without unpickling or executing anything.

A ``.pt2`` file is a zip: ``<root>/models/model.json`` (the graph, as JSON), raw tensor bytes under
``<root>/data/weights/`` described by ``model_weights_config.json``, and a few small text records.
Checked here:

* the zip: a size cap, no member name that is absolute, climbs out (``..``) or uses a backslash,
  every member under one root folder, declared sizes checked before a byte is decompressed;
* the tensors: raw bytes only (anything stored with pickle is refused, and ``sample_inputs/*.pt``,
  a pickle torch always writes, is never read), dtypes from a short list, declared shapes and
  strides checked against the cap :data:`MAX_TENSOR_ELEMENTS` and against the bytes present
  before any memory is allocated.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field

import torch
from torch import nn

from ...safe_json import JSONLimitError, loads_limited
from ..schema import MAX_CHECKPOINT_BYTES
from .common import FQN, IDENT, MAX_NAME, refuse

MAX_MEMBERS = 20_000
MAX_PROGRAM_JSON_BYTES = 64_000_000  # ResNet-50's graph is about 1 MB
MAX_CONFIG_JSON_BYTES = 16_000_000
MAX_JSON_DEPTH = 64
MAX_TENSOR_ELEMENTS = 1 << 28  # one weight tensor: 268M elements (1 GiB of float32)
# schema ScalarType code -> torch dtype, bytes per element (torch/_export/serde/schema.py)
DTYPES = {
    7: (torch.float32, 4),
    6: (torch.float16, 2),
    13: (torch.bfloat16, 2),
    8: (torch.float64, 8),
    5: (torch.int64, 8),
    4: (torch.int32, 4),
    12: (torch.bool, 1),
    2: (torch.uint8, 1),
}


@dataclass
class Archive:
    program: dict  # models/model.json, parsed
    state_dict: dict[str, torch.Tensor]
    constants: dict[str, torch.Tensor]
    root: str
    members: list[str] = field(default_factory=list)


def _member_problem(member: str) -> str:
    if not member or len(member) > 1000:
        return "a member name is empty or too long"
    if member.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member) or "\\" in member or "\0" in member:
        return f"the member name {member[:80]!r} is an absolute or Windows path"
    if any(part in ("..", ".") for part in member.split("/")):
        return f"the member name {member[:80]!r} climbs out of the archive ('..')"
    return ""


def _open_zip(blob: bytes, name: str) -> tuple[zipfile.ZipFile, str, dict[str, zipfile.ZipInfo]]:
    if len(blob) > MAX_CHECKPOINT_BYTES:
        raise refuse(name, f"it is {len(blob):,} bytes; at most {MAX_CHECKPOINT_BYTES:,} are accepted.")
    if blob[:4] != b"PK\x03\x04":
        raise refuse(name, "it is not a torch.export archive (a .pt2 file is a zip saved by torch.export.save).")
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise refuse(name, f"the zip is damaged or truncated ({exc}).") from None
    if len(infos) > MAX_MEMBERS:
        raise refuse(name, f"it holds {len(infos):,} files; at most {MAX_MEMBERS:,} are accepted.")
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        problem = _member_problem(info.filename)
        if problem:
            raise refuse(name, problem + ".")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise refuse(name, f"{info.filename!r} uses an unsupported compression.")
        if info.file_size > MAX_CHECKPOINT_BYTES:
            raise refuse(
                name, f"{info.filename!r} declares {info.file_size:,} bytes; the cap is {MAX_CHECKPOINT_BYTES:,}."
            )
        by_name[info.filename] = info
    if sum(i.file_size for i in infos) > MAX_CHECKPOINT_BYTES:
        raise refuse(name, f"its files add up to more than {MAX_CHECKPOINT_BYTES:,} bytes.")
    roots = {n.split("/", 1)[0] for n in by_name}
    if len(roots) != 1 or any("/" not in n for n in by_name):
        raise refuse(name, "its files are not all in one folder, as torch.export.save writes them.")
    root = roots.pop()
    return zf, root, by_name


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    try:
        data = zf.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise refuse(name, f"{info.filename!r} cannot be read; the zip is damaged or truncated ({exc}).") from None
    if len(data) != info.file_size:
        raise refuse(name, f"{info.filename!r} is truncated.")
    return data


def _json_member(zf, by_name, member: str, name: str, cap: int):
    info = by_name.get(member)
    if info is None:
        raise refuse(name, f"it has no {member.split('/', 1)[-1]!r}; is it a file saved by torch.export.save?")
    if info.file_size > cap:
        raise refuse(name, f"{member!r} is {info.file_size:,} bytes; at most {cap:,} are accepted.")
    try:
        return loads_limited(_read_member(zf, info, name), member, cap, MAX_JSON_DEPTH)
    except JSONLimitError as exc:
        raise refuse(name, str(exc)) from None


def _static_ints(values, what: str, name: str) -> list[int]:
    if not isinstance(values, list) or len(values) > 8:
        raise refuse(name, f"{what} is malformed.")
    out = []
    for v in values:
        n = v.get("as_int") if isinstance(v, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise refuse(name, f"{what} must be whole numbers (stored weights have fixed shapes).")
        out.append(n)
    return out


def _tensors(zf, by_name, root: str, folder: str, config: dict, name: str, what: str) -> dict[str, torch.Tensor]:
    """Decode the raw tensors a payload config lists, checking every declared size first."""
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise refuse(name, f"its {what} list is malformed.")
    planned = []
    total = 0
    for fqn, pm in entries.items():
        if not isinstance(fqn, str) or not FQN.match(fqn) or len(fqn) > MAX_NAME or not isinstance(pm, dict):
            raise refuse(name, f"a {what} entry has a malformed name {str(fqn)[:80]!r}.")
        if pm.get("use_pickle"):
            raise refuse(
                name,
                f"the {what} {fqn!r} is stored with pickle, which can run code; advlens never unpickles a file. "
                "Export plain tensors (no tensor subclasses or script objects).",
            )
        path = pm.get("path_name")
        tm = pm.get("tensor_meta")
        if not isinstance(path, str) or not IDENT.match(path) or not isinstance(tm, dict):
            raise refuse(name, f"the {what} {fqn!r} has a malformed entry.")
        member = f"{root}/data/{folder}/{path}"
        info = by_name.get(member)
        if info is None:
            raise refuse(name, f"the {what} {fqn!r} points at {path!r}, which is not in the archive.")
        if tm.get("dtype") not in DTYPES:
            raise refuse(name, f"the {what} {fqn!r} has an unsupported dtype (code {tm.get('dtype')!r}).")
        dtype, itemsize = DTYPES[tm["dtype"]]
        sizes = _static_ints(tm.get("sizes"), f"the shape of {fqn!r}", name)
        strides = _static_ints(tm.get("strides"), f"the strides of {fqn!r}", name)
        offset = _static_ints([tm.get("storage_offset", {"as_int": 0})], f"the offset of {fqn!r}", name)[0]
        numel = math.prod(sizes)
        if numel > MAX_TENSOR_ELEMENTS:
            raise refuse(
                name,
                f"the {what} {fqn!r} declares {numel:,} elements ({'x'.join(map(str, sizes))}); "
                f"at most {MAX_TENSOR_ELEMENTS:,} per tensor are accepted.",
            )
        if len(strides) != len(sizes):
            raise refuse(name, f"the {what} {fqn!r} has {len(strides)} strides for {len(sizes)} dimensions.")
        span = 0 if numel == 0 else offset + sum((s - 1) * st for s, st in zip(sizes, strides)) + 1
        if info.file_size % itemsize or span * itemsize > info.file_size:
            raise refuse(
                name,
                f"the {what} {fqn!r} declares {numel:,} elements of {itemsize} bytes, but its file holds "
                f"{info.file_size:,} bytes.",
            )
        total += info.file_size
        planned.append((fqn, pm, member, dtype, sizes, strides, offset))
    if total > MAX_CHECKPOINT_BYTES:
        raise refuse(name, f"its {what}s add up to {total:,} bytes; at most {MAX_CHECKPOINT_BYTES:,}.")
    out: dict[str, torch.Tensor] = {}
    storages: dict[str, torch.Tensor] = {}
    for fqn, pm, member, dtype, sizes, strides, offset in planned:
        if member not in storages:
            raw = bytearray(_read_member(zf, by_name[member], name))
            storages[member] = torch.frombuffer(raw, dtype=dtype) if raw else torch.zeros(0, dtype=dtype)
        flat = storages[member]
        if flat.dtype != dtype:
            raise refuse(name, f"two {what}s share {member!r} with different dtypes.")
        t = (
            torch.as_strided(flat, sizes, strides, offset).clone()
            if math.prod(sizes)
            else torch.zeros(sizes, dtype=dtype)
        )
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise refuse(name, f"the {what} {fqn!r} contains NaN or infinite values.")
        requires_grad = bool(tm_get(pm, "requires_grad")) and t.is_floating_point()
        out[fqn] = nn.Parameter(t, requires_grad=requires_grad) if pm.get("is_param") else t
    return out


def tm_get(pm: dict, key: str):
    return (pm.get("tensor_meta") or {}).get(key)


def read_archive(blob: bytes, name: str = "the file") -> Archive:
    """Open a ``.pt2`` archive without unpickling or executing anything (see the module docstring)."""
    zf, root, by_name = _open_zip(blob, name)
    with zf:
        fmt = by_name.get(f"{root}/archive_format")
        if fmt is None or _read_member(zf, fmt, name).strip() != b"pt2":
            raise refuse(name, "it is a zip but not a torch.export archive (no archive_format 'pt2').")
        order = by_name.get(f"{root}/byteorder")
        if order is not None and _read_member(zf, order, name).strip() not in (b"little", b""):
            raise refuse(name, "it was saved on a big-endian machine; re-save it on a little-endian one.")
        models = sorted(n for n in by_name if n.startswith(f"{root}/models/"))
        if models != [f"{root}/models/model.json"]:
            raise refuse(name, f"it must hold exactly one program, models/model.json (found {len(models)}).")
        known = re.compile(
            re.escape(root)
            + r"/(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json|"
            r"data/(weights|constants)/[A-Za-z0-9_]+(\.json)?|data/sample_inputs/model\.pt|extra/[A-Za-z0-9_.-]+)\Z"
        )
        for member in by_name:
            if not known.match(member):
                raise refuse(
                    name,
                    f"it holds {member[len(root) + 1 :][:80]!r}, which is not part of a plain exported program "
                    "(AOTInductor, ExecuTorch and pickled payloads are refused).",
                )
        program = _json_member(zf, by_name, f"{root}/models/model.json", name, MAX_PROGRAM_JSON_BYTES)
        wcfg = _json_member(zf, by_name, f"{root}/data/weights/model_weights_config.json", name, MAX_CONFIG_JSON_BYTES)
        ccfg_name = f"{root}/data/constants/model_constants_config.json"
        ccfg = _json_member(zf, by_name, ccfg_name, name, MAX_CONFIG_JSON_BYTES) if ccfg_name in by_name else {}
        state = _tensors(zf, by_name, root, "weights", wcfg, name, "weight")
        constants = _tensors(zf, by_name, root, "constants", ccfg or {"config": {}}, name, "constant")
    # sample_inputs/model.pt (a torch.save pickle) and extra/ files are never read.
    return Archive(program, state, constants, root, sorted(by_name))
