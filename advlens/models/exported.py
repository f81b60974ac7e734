"""Models without their code: programs saved with ``torch.export.save`` (``.pt2`` archives).

A ``.pt2`` file is a zip: ``<root>/models/model.json`` (the graph, as JSON), raw tensor bytes under
``<root>/data/weights/`` described by ``model_weights_config.json``, and a few small text records.
``torch.export.load`` must not be used on a stranger's file: it unpickles the sample inputs and any
tensor marked ``use_pickle`` (an unrestricted unpickling, weights_only off), resolves every operator name by
``getattr`` on ``torch`` (``torch.load`` is an operator name to it), hands symbolic sizes to
``sympy.sympify`` (which evaluates text) and compiles the ``guards_code`` strings with ``exec``.

So this module reads the archive itself and checks everything first:

* the zip: a size cap, no member name that is absolute, climbs out (``..``) or uses a backslash,
  every member under one root folder, declared sizes checked before a byte is decompressed;
* the tensors: raw bytes only (anything stored with pickle is refused, and ``sample_inputs/*.pt``,
  a pickle torch always writes, is never read), dtypes from a short list, declared shapes and
  strides checked against the cap :data:`MAX_TENSOR_ELEMENTS` and against the bytes present
  before any memory is allocated;
* the graph: every operator on :data:`ALLOWED_OPS` (PyTorch's own ``aten`` operators that image
  classifiers use, by name), no higher-order operators, subgraphs or custom objects, names that are
  plain identifiers, symbolic sizes that are arithmetic on symbols, no guard code, one image tensor
  in and one logits tensor out;
* the shapes: the graph is run once on fake tensors (no storage) at batch 1 and 2 and every
  intermediate result must stay under :data:`MAX_ACTIVATION_ELEMENTS` per image.

Only then is the JSON handed to PyTorch's deserializer (with the tensors already decoded, so it
unpickles nothing), and ``torch.export.unflatten`` gives back the module hierarchy: the layers keep
the names they had in the user's network (``features.3``), so Grad-CAM, feature maps and the
denoising view work at any of them. The image size, class names and normalisation come from the
user (CLI flags or a JSON beside the file); the input size must agree with the program's.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import warnings
import zipfile
from dataclasses import dataclass, field

import torch
from torch import nn

from ..safe_json import JSONLimitError, loads_limited
from .base import Classifier, ModelSpec
from .errors import CheckpointError
from .schema import MAX_CHECKPOINT_BYTES, check_metadata

ARCH = "torch_export"  # the ``arch`` of an imported program's metadata (not a buildable architecture)
SUFFIX = ".pt2"
MAX_MEMBERS = 20_000
MAX_PROGRAM_JSON_BYTES = 64_000_000  # ResNet-50's graph is about 1 MB
MAX_CONFIG_JSON_BYTES = 16_000_000
MAX_JSON_DEPTH = 64
MAX_TENSOR_ELEMENTS = 1 << 28  # one weight tensor: 268M elements (1 GiB of float32)
MAX_ACTIVATION_ELEMENTS = 1 << 26  # one intermediate result, per image
MAX_NODES = 100_000
MAX_NAME = 300
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

_CONV = ("conv2d", "convolution", "_convolution", "conv_transpose2d", "cudnn_convolution")
# Operators an image classifier's graph uses (export's training IR and core ATen after
# decompositions). Anything else is refused by name: the list is short on purpose.
ALLOWED_ATEN = frozenset(
    """
    add sub rsub mul div neg abs exp exp2 log log2 log1p sqrt rsqrt pow reciprocal square sign floor ceil
    round trunc frac erf sin cos tanh sigmoid relu relu_ relu6 hardtanh hardtanh_ hardswish hardswish_
    hardsigmoid hardsigmoid_ silu silu_ gelu elu elu_ leaky_relu leaky_relu_ softplus mish prelu
    _prelu_kernel clamp clamp_ clamp_min clamp_max minimum maximum where lerp addcmul addcdiv
    softmax _softmax log_softmax _log_softmax logsumexp mean sum amax amin max min var std var_mean
    std_mean norm linalg_vector_norm prod argmax argmin cumsum
    conv1d conv2d convolution _convolution conv_transpose2d linear addmm mm bmm matmul baddbmm einsum
    max_pool2d max_pool2d_with_indices avg_pool2d adaptive_avg_pool2d _adaptive_avg_pool2d
    adaptive_max_pool2d batch_norm _native_batch_norm_legit_no_training native_batch_norm layer_norm
    native_layer_norm group_norm native_group_norm instance_norm dropout feature_dropout alpha_dropout
    upsample_nearest2d upsample_bilinear2d pad constant_pad_nd reflection_pad2d replication_pad2d
    pixel_shuffle pixel_unshuffle scaled_dot_product_attention _scaled_dot_product_flash_attention_for_cpu
    view reshape _unsafe_view flatten unflatten permute transpose t contiguous clone unsqueeze squeeze
    expand cat stack split split_with_sizes chunk slice select index_select narrow unbind repeat flip
    roll alias detach lift_fresh_copy _to_copy to type_as movedim gather index zeros ones full
    zeros_like ones_like full_like arange scalar_tensor masked_fill eq ne lt le gt ge logical_and
    logical_or logical_not topk one_hot embedding copy
    sym_size sym_numel sym_stride sym_storage_offset _assert_scalar _assert_tensor_metadata
    sym_constrain_range sym_constrain_range_for_size
    """.split()
)
ALLOWED_PY = frozenset(
    f"_operator.{n}" for n in "getitem add sub mul floordiv truediv mod neg eq ne lt le gt ge".split()
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FQN = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")
_EXPR_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(\.\d+)?|'[a-z]{1,3}\d{1,9}'|[ +\-*/(),=]")
_SYMPY_NAMES = frozenset(
    "FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv PowByNatural "
    "FloatTrueDiv IntTrueDiv TruncToFloat TruncToInt ToFloat Identity Max Min oo Symbol Integer Add Mul Pow "
    "Rational positive integer nonnegative real finite True False".split()
)
_SYMBOL = re.compile(r"[a-z]{1,3}\d{1,9}\Z")  # s0, s77, u3: shape symbols
_TREE_TYPES = (None, "builtins.tuple", "builtins.list", "builtins.dict")
_VERIFIERS = ("", "ATEN", "TRAINING")
_LOCK = threading.Lock()  # PyTorch's deserializer keeps its state in a module global


def _refuse(name: str, why: str) -> CheckpointError:
    return CheckpointError(f"{name} was not loaded: {why}")


def is_program_name(name: str) -> bool:
    return str(name).lower().endswith(SUFFIX)


# ----- the archive ------------------------------------------------------------------------------
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
        raise _refuse(name, f"it is {len(blob):,} bytes; at most {MAX_CHECKPOINT_BYTES:,} are accepted.")
    if blob[:4] != b"PK\x03\x04":
        raise _refuse(name, "it is not a torch.export archive (a .pt2 file is a zip saved by torch.export.save).")
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise _refuse(name, f"the zip is damaged or truncated ({exc}).") from None
    if len(infos) > MAX_MEMBERS:
        raise _refuse(name, f"it holds {len(infos):,} files; at most {MAX_MEMBERS:,} are accepted.")
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        problem = _member_problem(info.filename)
        if problem:
            raise _refuse(name, problem + ".")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _refuse(name, f"{info.filename!r} uses an unsupported compression.")
        if info.file_size > MAX_CHECKPOINT_BYTES:
            raise _refuse(
                name, f"{info.filename!r} declares {info.file_size:,} bytes; the cap is {MAX_CHECKPOINT_BYTES:,}."
            )
        by_name[info.filename] = info
    if sum(i.file_size for i in infos) > MAX_CHECKPOINT_BYTES:
        raise _refuse(name, f"its files add up to more than {MAX_CHECKPOINT_BYTES:,} bytes.")
    roots = {n.split("/", 1)[0] for n in by_name}
    if len(roots) != 1 or any("/" not in n for n in by_name):
        raise _refuse(name, "its files are not all in one folder, as torch.export.save writes them.")
    root = roots.pop()
    return zf, root, by_name


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    try:
        data = zf.read(info)
    except (zipfile.BadZipFile, zlib_error(), EOFError, OSError, ValueError) as exc:
        raise _refuse(name, f"{info.filename!r} cannot be read; the zip is damaged or truncated ({exc}).") from None
    if len(data) != info.file_size:
        raise _refuse(name, f"{info.filename!r} is truncated.")
    return data


def zlib_error():
    import zlib

    return zlib.error


def _json_member(zf, by_name, member: str, name: str, cap: int):
    info = by_name.get(member)
    if info is None:
        raise _refuse(name, f"it has no {member.split('/', 1)[-1]!r}; is it a file saved by torch.export.save?")
    if info.file_size > cap:
        raise _refuse(name, f"{member!r} is {info.file_size:,} bytes; at most {cap:,} are accepted.")
    try:
        return loads_limited(_read_member(zf, info, name), member, cap, MAX_JSON_DEPTH)
    except JSONLimitError as exc:
        raise _refuse(name, str(exc)) from None


def _static_ints(values, what: str, name: str) -> list[int]:
    if not isinstance(values, list) or len(values) > 8:
        raise _refuse(name, f"{what} is malformed.")
    out = []
    for v in values:
        n = v.get("as_int") if isinstance(v, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise _refuse(name, f"{what} must be whole numbers (stored weights have fixed shapes).")
        out.append(n)
    return out


def _tensors(zf, by_name, root: str, folder: str, config: dict, name: str, what: str) -> dict[str, torch.Tensor]:
    """Decode the raw tensors a payload config lists, checking every declared size first."""
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(name, f"its {what} list is malformed.")
    planned = []
    total = 0
    for fqn, pm in entries.items():
        if not isinstance(fqn, str) or not _FQN.match(fqn) or len(fqn) > MAX_NAME or not isinstance(pm, dict):
            raise _refuse(name, f"a {what} entry has a malformed name {str(fqn)[:80]!r}.")
        if pm.get("use_pickle"):
            raise _refuse(
                name,
                f"the {what} {fqn!r} is stored with pickle, which can run code; advlens never unpickles a file. "
                "Export plain tensors (no tensor subclasses or script objects).",
            )
        path = pm.get("path_name")
        tm = pm.get("tensor_meta")
        if not isinstance(path, str) or not _IDENT.match(path) or not isinstance(tm, dict):
            raise _refuse(name, f"the {what} {fqn!r} has a malformed entry.")
        member = f"{root}/data/{folder}/{path}"
        info = by_name.get(member)
        if info is None:
            raise _refuse(name, f"the {what} {fqn!r} points at {path!r}, which is not in the archive.")
        if tm.get("dtype") not in DTYPES:
            raise _refuse(name, f"the {what} {fqn!r} has an unsupported dtype (code {tm.get('dtype')!r}).")
        dtype, itemsize = DTYPES[tm["dtype"]]
        sizes = _static_ints(tm.get("sizes"), f"the shape of {fqn!r}", name)
        strides = _static_ints(tm.get("strides"), f"the strides of {fqn!r}", name)
        offset = _static_ints([tm.get("storage_offset", {"as_int": 0})], f"the offset of {fqn!r}", name)[0]
        numel = math.prod(sizes)
        if numel > MAX_TENSOR_ELEMENTS:
            raise _refuse(
                name,
                f"the {what} {fqn!r} declares {numel:,} elements ({'x'.join(map(str, sizes))}); "
                f"at most {MAX_TENSOR_ELEMENTS:,} per tensor are accepted.",
            )
        if len(strides) != len(sizes):
            raise _refuse(name, f"the {what} {fqn!r} has {len(strides)} strides for {len(sizes)} dimensions.")
        span = 0 if numel == 0 else offset + sum((s - 1) * st for s, st in zip(sizes, strides)) + 1
        if info.file_size % itemsize or span * itemsize > info.file_size:
            raise _refuse(
                name,
                f"the {what} {fqn!r} declares {numel:,} elements of {itemsize} bytes, but its file holds "
                f"{info.file_size:,} bytes.",
            )
        total += info.file_size
        planned.append((fqn, pm, member, dtype, sizes, strides, offset))
    if total > MAX_CHECKPOINT_BYTES:
        raise _refuse(name, f"its {what}s add up to {total:,} bytes; at most {MAX_CHECKPOINT_BYTES:,}.")
    out: dict[str, torch.Tensor] = {}
    storages: dict[str, torch.Tensor] = {}
    for fqn, pm, member, dtype, sizes, strides, offset in planned:
        if member not in storages:
            raw = bytearray(_read_member(zf, by_name[member], name))
            storages[member] = torch.frombuffer(raw, dtype=dtype) if raw else torch.zeros(0, dtype=dtype)
        flat = storages[member]
        if flat.dtype != dtype:
            raise _refuse(name, f"two {what}s share {member!r} with different dtypes.")
        t = (
            torch.as_strided(flat, sizes, strides, offset).clone()
            if math.prod(sizes)
            else torch.zeros(sizes, dtype=dtype)
        )
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise _refuse(name, f"the {what} {fqn!r} contains NaN or infinite values.")
        requires_grad = bool(tm_get(pm, "requires_grad")) and t.is_floating_point()
        out[fqn] = nn.Parameter(t, requires_grad=requires_grad) if pm.get("is_param") else t
    return out


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def tm_get(pm: dict, key: str):
    return (pm.get("tensor_meta") or {}).get(key)


def read_archive(blob: bytes, name: str = "the file") -> Archive:
    """Open a ``.pt2`` archive without unpickling or executing anything (see the module docstring)."""
    zf, root, by_name = _open_zip(blob, name)
    with zf:
        fmt = by_name.get(f"{root}/archive_format")
        if fmt is None or _read_member(zf, fmt, name).strip() != b"pt2":
            raise _refuse(name, "it is a zip but not a torch.export archive (no archive_format 'pt2').")
        order = by_name.get(f"{root}/byteorder")
        if order is not None and _read_member(zf, order, name).strip() not in (b"little", b""):
            raise _refuse(name, "it was saved on a big-endian machine; re-save it on a little-endian one.")
        models = sorted(n for n in by_name if n.startswith(f"{root}/models/"))
        if models != [f"{root}/models/model.json"]:
            raise _refuse(name, f"it must hold exactly one program, models/model.json (found {len(models)}).")
        known = re.compile(
            re.escape(root)
            + r"/(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json|"
            r"data/(weights|constants)/[A-Za-z0-9_]+(\.json)?|data/sample_inputs/model\.pt|extra/[A-Za-z0-9_.-]+)\Z"
        )
        for member in by_name:
            if not known.match(member):
                raise _refuse(
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


# ----- the graph ----------------------------------------------------------------------------------
@dataclass
class ProgramInfo:
    input_shape: tuple[int, int, int]  # C, H, W
    batch: int | None  # the fixed batch size, or None when the batch dimension is dynamic
    num_classes: int


def _op_problem(target) -> str:
    if not isinstance(target, str) or len(target) > 200:
        return "a node has a malformed operator"
    if target in ALLOWED_PY:
        return ""
    parts = target.split(".")
    if (
        len(parts) == 5
        and parts[:3] == ["torch", "ops", "aten"]
        and parts[3] in ALLOWED_ATEN
        and _IDENT.match(parts[4])
    ):
        return ""
    return f"it calls the operator {target[:100]!r}, which is not one of the PyTorch (aten) operators advlens runs"


def _expr_problem(expr) -> str:
    if not isinstance(expr, str) or len(expr) > 500:
        return "a symbolic size is malformed"
    pos = 0
    while pos < len(expr):
        m = _EXPR_TOKEN.match(expr, pos)
        if m is None:
            return f"the symbolic size {expr[:60]!r} is not arithmetic on shape symbols"
        tok = m.group(0)
        if tok[0].isalpha() or tok[0] == "_":
            if tok not in _SYMPY_NAMES and not _SYMBOL.match(tok):
                return f"the symbolic size {expr[:60]!r} names {tok[:30]!r}"
        pos = m.end()
    return ""


def _spec_problem(text) -> str:
    """A pytree spec (JSON text) may hold only tuples, lists, dicts and leaves."""
    try:
        spec = json.loads(text) if isinstance(text, str) and len(text) < 100_000 else None
    except ValueError:
        spec = None
    if not (isinstance(spec, list) and len(spec) == 2):
        return "its input/output structure is malformed"
    stack = [spec[1]]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or node.get("type") not in _TREE_TYPES:
            return "its inputs or outputs use Python types other than tensors, tuples, lists and dicts"
        stack.extend(node.get("children_spec") or [])
    return ""


def _walk(value, name: str, path: str = "") -> None:
    """Check every string the deserializer turns into code, names or sympy expressions."""
    stack = [(value, path)]
    seen = 0
    while stack:
        v, where = stack.pop()
        seen += 1
        if seen > 20_000_000:
            raise _refuse(name, "its graph is too large.")
        if isinstance(v, list):
            stack.extend((x, where) for x in v)
            continue
        if not isinstance(v, dict):
            continue
        for k, x in v.items():
            if k in ("as_graph", "as_custom_obj", "as_custom_objs") and x is not None:
                raise _refuse(
                    name, "it uses subgraphs or custom objects (control flow, torchbind), which advlens does not run."
                )
            if k in ("target", "as_operator", "as_operators") and x is not None:
                for t in x if isinstance(x, list) else [x]:
                    t = t.get("name") if isinstance(t, dict) else t
                    problem = _op_problem(t)
                    if problem:
                        raise _refuse(name, problem + ".")
            elif k == "expr_str":
                problem = _expr_problem(x)
                if problem:
                    raise _refuse(name, problem + ".")
            elif k in ("name", "parameter_name", "buffer_name", "tensor_constant_name", "fqn", "path_name"):
                ok = isinstance(x, str) and len(x) <= MAX_NAME and (x == "" or _FQN.match(x))
                if not ok:
                    raise _refuse(name, f"it has a malformed name {str(x)[:60]!r}.")
            elif k in ("in_spec", "out_spec") and x is not None:
                problem = _spec_problem(x)
                if problem:
                    raise _refuse(name, problem + ".")
            if isinstance(x, (dict, list)):
                stack.append((x, k))


def _node_meta(meta: dict, name: str) -> dict:
    """Keep only ``nn_module_stack`` (what unflatten needs), checked; drop traces and custom data."""
    stack = meta.get("nn_module_stack") if isinstance(meta, dict) else None
    if not stack:
        return {}
    if not isinstance(stack, str) or len(stack) > 100_000 or not stack.isprintable():
        raise _refuse(name, "a node's module path is malformed.")
    for item in stack.split(";"):
        parts = item.split(",")
        path = parts[1] if len(parts) >= 3 else None
        if path is None or not (path == "" or _FQN.match(path)):
            raise _refuse(name, f"a node's module path {item[:80]!r} is malformed.")
    return {"nn_module_stack": stack}


def check_program(program: dict, name: str = "the file") -> tuple[dict, ProgramInfo]:
    """Validate the parsed ``models/model.json`` and return a sanitised copy and what it takes/gives."""
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _refuse(name, "models/model.json is not an exported program.")
    gm = program["graph_module"]
    graph = gm.get("graph")
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise _refuse(name, "models/model.json has no graph.")
    if len(graph["nodes"]) > MAX_NODES:
        raise _refuse(name, f"its graph has {len(graph['nodes']):,} operations; at most {MAX_NODES:,}.")
    if graph.get("custom_obj_values") or gm.get("treespec_namedtuple_fields"):
        raise _refuse(name, "it uses custom objects or named tuples, which advlens does not load.")
    verifiers = program.get("verifiers") or []
    if not isinstance(verifiers, list) or any(v not in _VERIFIERS for v in verifiers):
        raise _refuse(name, f"it names an unknown dialect {str(verifiers)[:60]}.")
    rc = program.get("range_constraints") or {}
    if not isinstance(rc, dict) or not all(isinstance(k, str) and _SYMBOL.match(k) for k in rc):
        raise _refuse(name, "its shape ranges are malformed.")
    _walk(gm, name)
    clean = dict(program)
    clean["guards_code"] = []  # PyTorch would compile these strings with exec(); the shapes are checked below
    clean_gm = dict(gm)
    clean_gm["metadata"] = {}
    clean_graph = dict(graph)
    clean_graph["nodes"] = [dict(n, metadata=_node_meta(n.get("metadata") or {}, name)) for n in graph["nodes"]]
    clean_gm["graph"] = clean_graph
    clean["graph_module"] = clean_gm
    return clean, _io_info(gm, name)


def _io_info(gm: dict, name: str) -> ProgramInfo:
    sig = gm.get("signature") or {}
    inputs = [s["user_input"] for s in sig.get("input_specs", []) if isinstance(s, dict) and "user_input" in s]
    kinds = {k for s in sig.get("input_specs", []) if isinstance(s, dict) for k in s}
    odd = kinds - {"user_input", "parameter", "buffer", "tensor_constant"}
    if odd:
        raise _refuse(name, f"its inputs include {sorted(odd)[0]!r}; advlens loads programs of tensors only.")
    outputs = [s for s in sig.get("output_specs", []) if isinstance(s, dict)]
    if len(inputs) != 1 or "as_tensor" not in (inputs[0].get("arg") or {}):
        raise _refuse(name, "the program must take one image tensor (N, C, H, W) as its only input.")
    if len(outputs) != 1 or "user_output" not in outputs[0] or "as_tensor" not in outputs[0]["user_output"]["arg"]:
        raise _refuse(
            name,
            "the program must return one logits tensor (N, classes) and change no buffer; export the model in eval mode.",
        )
    values = gm["graph"].get("tensor_values") or {}
    x = values.get(inputs[0]["arg"]["as_tensor"]["name"])
    y = values.get(outputs[0]["user_output"]["arg"]["as_tensor"]["name"])
    if not isinstance(x, dict) or not isinstance(y, dict):
        raise _refuse(name, "its input or output has no recorded shape.")
    if x.get("dtype") != 7:
        raise _refuse(name, "its input must be a float32 image tensor.")
    xs, ys = x.get("sizes") or [], y.get("sizes") or []
    if len(xs) != 4 or len(ys) != 2:
        raise _refuse(name, "it must map images (N, C, H, W) to logits (N, classes).")
    chw = [d.get("as_int") for d in xs[1:]]
    classes = ys[1].get("as_int")
    if not all(isinstance(d, int) and d > 0 for d in chw) or not isinstance(classes, int) or classes < 2:
        raise _refuse(name, "its image size and number of classes must be fixed (only the batch may be dynamic).")
    batch = xs[0].get("as_int")
    return ProgramInfo((chw[0], chw[1], chw[2]), batch if isinstance(batch, int) else None, classes)


# ----- building the model ---------------------------------------------------------------------------
def _deserialize(program: dict, archive: Archive, name: str):
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            serialized = _dict_to_dataclass(schema.ExportedProgram, program)
            ep = ExportedProgramDeserializer().deserialize(serialized, archive.state_dict, archive.constants, None)
            module = torch.export.unflatten(ep)
        except CheckpointError:
            raise
        except Exception as exc:  # the deserializer raises many kinds on inconsistent input
            raise _refuse(
                name, f"PyTorch could not rebuild the program ({type(exc).__name__}: {_first_line(exc)})."
            ) from None
    return ep, module


def _check_shapes(ep, info: ProgramInfo, name: str) -> None:
    """Run the flat graph on fake tensors (no storage) and bound every intermediate result."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    batches = [info.batch] if info.batch is not None else [1, 2]
    sig = ep.graph_signature
    for n in batches:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            x = mode.from_tensor(torch.zeros(n, *info.input_shape))
            args = []
            for spec in sig.input_specs:
                if spec.kind.name == "USER_INPUT":
                    args.append(x)
                elif spec.target in ep.state_dict:
                    args.append(ep.state_dict[spec.target])
                else:
                    args.append(ep.constants[spec.target])
            checker = _Bounded(ep.graph_module, MAX_ACTIVATION_ELEMENTS * n, name)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = checker.run(*args)
            except Exception as exc:
                if checker.problem:  # fx adds its own lines to an exception raised inside a node: keep ours
                    raise CheckpointError(checker.problem) from None
                raise _refuse(
                    name,
                    f"the program fails on a {n}x{'x'.join(map(str, info.input_shape))} input ({type(exc).__name__}: {_first_line(exc)}).",
                ) from None
        out = out[0] if isinstance(out, (tuple, list)) else out
        if tuple(out.shape) != (n, info.num_classes):
            raise _refuse(name, f"it returns shape {tuple(out.shape)} for {n} image(s), not ({n}, {info.num_classes}).")


class _Bounded(torch.fx.Interpreter):
    def __init__(self, gm, cap: int, name: str):
        super().__init__(gm)
        self.cap, self.name, self.problem = cap, name, ""

    def run_node(self, n):
        out = super().run_node(n)
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.numel() > self.cap:
                self.problem = str(
                    _refuse(
                        self.name,
                        f"the operation {n.name!r} makes a tensor of {t.numel():,} elements; at most "
                        f"{MAX_ACTIVATION_ELEMENTS:,} per image are accepted.",
                    )
                )
                raise CheckpointError(self.problem)
        return out


def in_program_batches(model: nn.Module, x: torch.Tensor, target, fn):
    """``fn(x, target)``, called with exactly the program's batch at a time when ``model`` is a program
    exported with a fixed batch (its forward runs a larger input in slices, so a hook on one of its
    layers, as Grad-CAM's, would see one call per slice and keep the last): the last chunk is padded
    with copies of its last row, the results are trimmed and joined. Any other model: one call."""
    b = getattr(model, "program_batch", None)
    if b is None or x.shape[0] == b:
        return fn(x, target)
    t = torch.as_tensor(target, device=x.device).reshape(-1)
    t = t.expand(x.shape[0]) if t.numel() == 1 else t
    outs = []
    for start in range(0, x.shape[0], b):
        xs, ts = x[start : start + b], t[start : start + b]
        k = xs.shape[0]
        if k < b:
            xs, ts = torch.cat([xs, xs[-1:].expand(b - k, *xs.shape[1:])]), torch.cat([ts, ts[-1:].expand(b - k)])
        outs.append(fn(xs, ts)[:k])
    return torch.cat(outs)


class ExportedClassifier(Classifier):
    """A :class:`Classifier` whose network is an unflattened exported program. Its layers keep their
    original names (``net.features.3``); conv layers are found from the operators they run."""

    def __init__(self, net: nn.Module, spec: ModelSpec, batch: int | None, cam_layer: str | None = None):
        super().__init__(net, spec)
        self.program_batch = batch
        self._cam_layer = cam_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        b = self.program_batch
        if b is None or z.shape[0] == b:
            return self.net(z)
        outs = []  # a program exported with a fixed batch: run it on slices of that size
        for start in range(0, z.shape[0], b):
            part = z[start : start + b]
            k = part.shape[0]
            if k < b:
                part = torch.cat([part, part[-1:].expand(b - k, *part.shape[1:])])
            outs.append(self.net(part)[:k])
        return torch.cat(outs)

    def conv_layers(self) -> dict[str, nn.Module]:
        out = {}
        for name, m in self.net.named_modules():
            graph = getattr(m, "graph", None)
            if not name or graph is None or any(True for _ in m.children()):
                continue
            ops = {
                str(getattr(n.target, "__name__", n.target)).split(".")[0]
                for n in graph.nodes
                if n.op == "call_function"
            }
            if ops & set(_CONV):
                out[f"net.{name}"] = m
        return out

    def default_cam_layer(self) -> str:
        if self._cam_layer:
            return self._cam_layer
        convs = list(self.conv_layers())
        if not convs:
            raise ValueError("this exported model has no conv layer; name a layer for Grad-CAM (cam_layer)")
        return convs[-1]

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        # lifted constants are plain tensor attributes of the unflattened modules: move them too
        for m in self.net.modules():
            for key, value in list(vars(m).items()):
                if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                    setattr(m, key, fn(value))
        return self


# ----- options (flags or the JSON beside the file) and metadata --------------------------------------
OPTION_KEYS = ("input_size", "class_names", "mean", "std", "dataset", "description", "cam_layer")


def program_metadata(info: ProgramInfo, options: dict | None, name: str) -> dict:
    """The advlens metadata of a program: ``options`` (input size, class names, mean, std, dataset,
    description, cam_layer) checked against what the program takes and returns."""
    options = dict(options or {})
    if options.get("format") == "advlens-checkpoint":  # our own stored metadata
        program = options.get("program") if isinstance(options.get("program"), dict) else {}
        options = {k: options[k] for k in OPTION_KEYS if k in options}
        if program.get("cam_layer"):
            options.setdefault("cam_layer", program["cam_layer"])
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise CheckpointError(
            f"the options of {name} have unknown key(s) {unknown[:3]}; known: {', '.join(OPTION_KEYS)}."
        )
    c, h, w = info.input_shape
    size = options.get("input_size")
    if size is not None and list(size) != [c, h, w]:
        raise CheckpointError(
            f"{name} takes {c}x{h}x{w} images, but the input size given is {'x'.join(map(str, size))}."
        )
    names = options.get("class_names")
    if names is None:
        names = [str(i) for i in range(info.num_classes)]
    elif not isinstance(names, list) or len(names) != info.num_classes:
        count = len(names) if isinstance(names, list) else "no list of"
        raise CheckpointError(f"{name} returns {info.num_classes} logits, but {count} class names were given.")
    mean, std = options.get("mean", [0.0]), options.get("std", [1.0])
    for key, values in (("mean", mean), ("std", std)):
        if isinstance(values, list) and len(values) == 1:
            values *= c
        options[key] = values
    meta = {
        "format": "advlens-checkpoint",
        "arch": ARCH,
        "input_size": [c, h, w],
        "class_names": names,
        "mean": options["mean"],
        "std": options["std"],
        "dataset": str(options.get("dataset") or "?"),
        "description": str(options.get("description") or f"torch.export program {name}"),
        "program": {"batch": info.batch, "cam_layer": options.get("cam_layer") or ""},
    }
    meta = check_metadata(meta, f"the options of {name}")
    cam = meta["program"]["cam_layer"]
    if not isinstance(cam, str) or (cam and not _FQN.match(cam.removeprefix("net."))):
        raise CheckpointError(f"the cam_layer of {name} must be a layer name such as features.3.")
    return meta


def read_program(blob: bytes, options: dict | None = None, name: str = "the file") -> tuple[ExportedClassifier, dict]:
    """Validate and load a ``.pt2`` program: (model in eval mode, advlens metadata)."""
    archive = read_archive(blob, name)
    program, info = check_program(archive.program, name)
    meta = program_metadata(info, options, name)
    ep, module = _deserialize(program, archive, name)
    _check_shapes(ep, info, name)
    for m in module.modules():  # run the generated code rather than the (slow) fx interpreter
        if hasattr(m, "_run_with_interpreter"):
            m._run_with_interpreter = False
    spec = ModelSpec.from_dict({**meta, "arch_kwargs": {}})
    cam = meta["program"]["cam_layer"]
    cam = cam if not cam or cam.startswith("net.") else f"net.{cam}"
    model = ExportedClassifier(module, spec, info.batch, cam or None)
    if cam:
        try:
            model.get_submodule(cam)
        except AttributeError:
            layers = ", ".join(list(model.conv_layers())[-5:]) or "none found"
            raise CheckpointError(
                f"{name} has no layer {cam!r} for Grad-CAM (its conv layers end with: {layers})."
            ) from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.checkpoint_meta = meta
    return model, meta


def options_from_json(data: bytes | str | None, name: str) -> dict:
    """The options in the JSON beside a program (or uploaded with it)."""
    if data is None:
        return {}
    try:
        value = loads_limited(data, name, 2_000_000)
    except JSONLimitError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{name} must be a JSON object with input_size, class_names, mean and std.")
    return value


def load_program(path, map_location: str | torch.device = "cpu") -> tuple[ExportedClassifier, dict]:
    """Load ``path`` (a ``.pt2``) with the options in the JSON beside it (advlens's stored metadata
    after an import, or the user's own file): regular files within the size caps only."""
    import os
    from pathlib import Path

    from ..safe_files import UnsafeFileError, read_small_file

    path = Path(path)
    side = path.with_suffix(".json")
    try:
        blob = read_small_file(path, MAX_CHECKPOINT_BYTES)
        options = options_from_json(read_small_file(side, 2_000_000), side.name) if os.path.lexists(side) else {}
    except UnsafeFileError as exc:
        raise CheckpointError(str(exc)) from None
    model, meta = read_program(blob, options, path.name)
    return model.to(map_location), meta


def options_from_flags(
    input_size: str | None = None,
    classes: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    dataset: str | None = None,
    cam_layer: str | None = None,
) -> dict:
    """Options from command-line text: ``3x32x32``, ``cat,dog``, ``0.49,0.48,0.45``. ValueError says what is wrong."""
    out: dict = {}
    if input_size:
        parts = input_size.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts) or len(input_size) > 40:
            raise ValueError(
                f"--input-size must look like 3x32x32 (channels x height x width), not {input_size[:40]!r}"
            )
        out["input_size"] = [int(p) for p in parts]
    if classes:
        if len(classes) > 2_000_000:
            raise ValueError("--classes is too long")
        out["class_names"] = [c.strip() for c in classes.split(",")]
    for key, text in (("mean", mean), ("std", std)):
        if text:
            try:
                values = [float(v) for v in text.split(",")[:4]]
            except ValueError:
                raise ValueError(f"--{key} must be numbers separated by commas, such as 0.5,0.5,0.5") from None
            out[key] = values
    if dataset:
        out["dataset"] = dataset[:100]
    if cam_layer:
        out["cam_layer"] = cam_layer[:MAX_NAME]
    return out
