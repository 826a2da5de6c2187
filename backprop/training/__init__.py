"""The trainer: everything that runs a training step, above what a step is made of.

- `step`: the one step builder (`build_step`; `make_step` for a step of your own loop);
- `graph`: CUDA-graph replay of a whole step (`GraphedStep`, `graph_unsupported_reason`),
  on the capture primitives of `backprop.backends.cuda_graph`;
- `loop`: `fit`, the epoch loop, whose extras are `backprop.callbacks`;
- `evaluate`: mean loss and metrics on device data.

It sits below the user's `bp.Sequential` (which imports it) and names what it needs of a
model in `protocol.TrainableModel`.
"""

from __future__ import annotations

from .evaluate import evaluate
from .graph import GraphedStep, graph_unsupported_reason
from .loop import TrainingDivergedError, fit
from .protocol import TrainableModel
from .step import Step, StepCore, build_step, make_step

__all__ = [
    "GraphedStep",
    "Step",
    "StepCore",
    "TrainableModel",
    "TrainingDivergedError",
    "build_step",
    "evaluate",
    "fit",
    "graph_unsupported_reason",
    "make_step",
]
