"""Rebuilding a checked program as a module, and bounding what it computes.

The sanitised JSON goes to PyTorch's deserializer with the tensors already decoded (so it unpickles
nothing), and ``torch.export.unflatten`` gives back the module hierarchy: the layers keep the names they
had in the user's network (``features.3``). The graph is then run once on fake tensors (no storage) at
batch 1 and 2, and every intermediate result must stay under :data:`MAX_ACTIVATION_ELEMENTS` per image.
"""

from __future__ import annotations

import threading
import warnings

import torch

from ..errors import CheckpointError
from .archive import Archive
from .common import first_line, refuse
from .graph import ProgramInfo

MAX_ACTIVATION_ELEMENTS = 1 << 26  # one intermediate result, per image
_LOCK = threading.Lock()  # PyTorch's deserializer keeps its state in a module global


def deserialize(program: dict, archive: Archive, name: str):
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
            raise refuse(
                name, f"PyTorch could not rebuild the program ({type(exc).__name__}: {first_line(exc)})."
            ) from None
    return ep, module


def check_shapes(ep, info: ProgramInfo, name: str) -> None:
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
                raise refuse(
                    name,
                    f"the program fails on a {n}x{'x'.join(map(str, info.input_shape))} input ({type(exc).__name__}: {first_line(exc)}).",
                ) from None
        out = out[0] if isinstance(out, (tuple, list)) else out
        if tuple(out.shape) != (n, info.num_classes):
            raise refuse(name, f"it returns shape {tuple(out.shape)} for {n} image(s), not ({n}, {info.num_classes}).")


class _Bounded(torch.fx.Interpreter):
    def __init__(self, gm, cap: int, name: str):
        super().__init__(gm)
        self.cap, self.name, self.problem = cap, name, ""

    def run_node(self, n):
        out = super().run_node(n)
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.numel() > self.cap:
                self.problem = str(
                    refuse(
                        self.name,
                        f"the operation {n.name!r} makes a tensor of {t.numel():,} elements; at most "
                        f"{MAX_ACTIVATION_ELEMENTS:,} per image are accepted.",
                    )
                )
                raise CheckpointError(self.problem)
        return out
