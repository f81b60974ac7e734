"""Models without their code: programs saved with ``torch.export.save`` (``.pt2`` archives).

``torch.export.load`` must not be used on a stranger's file: it unpickles the sample inputs and any
tensor marked ``use_pickle`` (an unrestricted unpickling, weights_only off), resolves every operator name
by ``getattr`` on ``torch``, hands symbolic sizes to ``sympy.sympify`` (which evaluates text) and
compiles the ``guards_code`` strings with ``exec``. So this package reads the archive itself and checks
everything first, one step per module:

* :mod:`.archive`: the zip and the raw tensors, every size checked before it is read;
* :mod:`.graph`: the operators, names, symbolic sizes and input/output structure of the graph;
* :mod:`.options`: the image size, class names and normalisation the user gives, against the program;
* :mod:`.rebuild`: PyTorch's deserializer on the checked JSON, ``torch.export.unflatten`` for the
  module hierarchy, and a run on fake tensors that bounds every intermediate result;
* :mod:`.classifier`: the result as a :class:`~advlens.models.base.Classifier` whose layers keep the
  names they had in the user's network (``features.3``), so Grad-CAM, feature maps and the denoising
  view work at any of them;
* :mod:`.load`: those steps in order (:func:`read_program`, :func:`load_program`).
"""

from .archive import MAX_TENSOR_ELEMENTS, read_archive
from .classifier import ExportedClassifier, in_program_batches
from .common import ARCH
from .graph import check_program
from .load import load_program, read_program
from .options import options_from_flags, options_from_json, program_metadata

__all__ = [
    "ARCH",
    "MAX_TENSOR_ELEMENTS",
    "ExportedClassifier",
    "check_program",
    "in_program_batches",
    "load_program",
    "options_from_flags",
    "options_from_json",
    "program_metadata",
    "read_archive",
    "read_program",
]
