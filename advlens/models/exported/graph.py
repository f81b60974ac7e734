"""Checking an exported program's graph (``models/model.json``) before PyTorch's deserializer sees it.

PyTorch's own loader resolves every operator name by ``getattr`` on ``torch`` (``torch.load`` is an
operator name to it), hands symbolic sizes to ``sympy.sympify`` (which evaluates text) and compiles the
``guards_code`` strings with ``exec``. So every operator must be on :data:`ALLOWED_ATEN` (PyTorch's own
``aten`` operators that image classifiers use, by name) or :data:`ALLOWED_PY`; no higher-order
operators, subgraphs or custom objects; names are plain identifiers; symbolic sizes are arithmetic on
symbols; the guard code is dropped; one image tensor goes in and one logits tensor comes out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .common import FQN, IDENT, MAX_NAME, refuse

MAX_NODES = 100_000
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
_EXPR_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(\.\d+)?|'[a-z]{1,3}\d{1,9}'|[ +\-*/(),=]")
_SYMPY_NAMES = frozenset(
    "FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv PowByNatural "
    "FloatTrueDiv IntTrueDiv TruncToFloat TruncToInt ToFloat Identity Max Min oo Symbol Integer Add Mul Pow "
    "Rational positive integer nonnegative real finite True False".split()
)
_SYMBOL = re.compile(r"[a-z]{1,3}\d{1,9}\Z")  # s0, s77, u3: shape symbols
_TREE_TYPES = (None, "builtins.tuple", "builtins.list", "builtins.dict")
_VERIFIERS = ("", "ATEN", "TRAINING")


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
    if len(parts) == 5 and parts[:3] == ["torch", "ops", "aten"] and parts[3] in ALLOWED_ATEN and IDENT.match(parts[4]):
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
            raise refuse(name, "its graph is too large.")
        if isinstance(v, list):
            stack.extend((x, where) for x in v)
            continue
        if not isinstance(v, dict):
            continue
        for k, x in v.items():
            if k in ("as_graph", "as_custom_obj", "as_custom_objs") and x is not None:
                raise refuse(
                    name, "it uses subgraphs or custom objects (control flow, torchbind), which advlens does not run."
                )
            if k in ("target", "as_operator", "as_operators") and x is not None:
                for t in x if isinstance(x, list) else [x]:
                    t = t.get("name") if isinstance(t, dict) else t
                    problem = _op_problem(t)
                    if problem:
                        raise refuse(name, problem + ".")
            elif k == "expr_str":
                problem = _expr_problem(x)
                if problem:
                    raise refuse(name, problem + ".")
            elif k in ("name", "parameter_name", "buffer_name", "tensor_constant_name", "fqn", "path_name"):
                ok = isinstance(x, str) and len(x) <= MAX_NAME and (x == "" or FQN.match(x))
                if not ok:
                    raise refuse(name, f"it has a malformed name {str(x)[:60]!r}.")
            elif k in ("in_spec", "out_spec") and x is not None:
                problem = _spec_problem(x)
                if problem:
                    raise refuse(name, problem + ".")
            if isinstance(x, (dict, list)):
                stack.append((x, k))


def _node_meta(meta: dict, name: str) -> dict:
    """Keep only ``nn_module_stack`` (what unflatten needs), checked; drop traces and custom data."""
    stack = meta.get("nn_module_stack") if isinstance(meta, dict) else None
    if not stack:
        return {}
    if not isinstance(stack, str) or len(stack) > 100_000 or not stack.isprintable():
        raise refuse(name, "a node's module path is malformed.")
    for item in stack.split(";"):
        parts = item.split(",")
        path = parts[1] if len(parts) >= 3 else None
        if path is None or not (path == "" or FQN.match(path)):
            raise refuse(name, f"a node's module path {item[:80]!r} is malformed.")
    return {"nn_module_stack": stack}


def check_program(program: dict, name: str = "the file") -> tuple[dict, ProgramInfo]:
    """Validate the parsed ``models/model.json`` and return a sanitised copy and what it takes/gives."""
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise refuse(name, "models/model.json is not an exported program.")
    gm = program["graph_module"]
    graph = gm.get("graph")
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise refuse(name, "models/model.json has no graph.")
    if len(graph["nodes"]) > MAX_NODES:
        raise refuse(name, f"its graph has {len(graph['nodes']):,} operations; at most {MAX_NODES:,}.")
    if graph.get("custom_obj_values") or gm.get("treespec_namedtuple_fields"):
        raise refuse(name, "it uses custom objects or named tuples, which advlens does not load.")
    verifiers = program.get("verifiers") or []
    if not isinstance(verifiers, list) or any(v not in _VERIFIERS for v in verifiers):
        raise refuse(name, f"it names an unknown dialect {str(verifiers)[:60]}.")
    rc = program.get("range_constraints") or {}
    if not isinstance(rc, dict) or not all(isinstance(k, str) and _SYMBOL.match(k) for k in rc):
        raise refuse(name, "its shape ranges are malformed.")
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
        raise refuse(name, f"its inputs include {sorted(odd)[0]!r}; advlens loads programs of tensors only.")
    outputs = [s for s in sig.get("output_specs", []) if isinstance(s, dict)]
    if len(inputs) != 1 or "as_tensor" not in (inputs[0].get("arg") or {}):
        raise refuse(name, "the program must take one image tensor (N, C, H, W) as its only input.")
    if len(outputs) != 1 or "user_output" not in outputs[0] or "as_tensor" not in outputs[0]["user_output"]["arg"]:
        raise refuse(
            name,
            "the program must return one logits tensor (N, classes) and change no buffer; export the model in eval mode.",
        )
    values = gm["graph"].get("tensor_values") or {}
    x = values.get(inputs[0]["arg"]["as_tensor"]["name"])
    y = values.get(outputs[0]["user_output"]["arg"]["as_tensor"]["name"])
    if not isinstance(x, dict) or not isinstance(y, dict):
        raise refuse(name, "its input or output has no recorded shape.")
    if x.get("dtype") != 7:
        raise refuse(name, "its input must be a float32 image tensor.")
    xs, ys = x.get("sizes") or [], y.get("sizes") or []
    if len(xs) != 4 or len(ys) != 2:
        raise refuse(name, "it must map images (N, C, H, W) to logits (N, classes).")
    chw = [d.get("as_int") for d in xs[1:]]
    classes = ys[1].get("as_int")
    if not all(isinstance(d, int) and d > 0 for d in chw) or not isinstance(classes, int) or classes < 2:
        raise refuse(name, "its image size and number of classes must be fixed (only the batch may be dynamic).")
    batch = xs[0].get("as_int")
    return ProgramInfo((chw[0], chw[1], chw[2]), batch if isinstance(batch, int) else None, classes)
