"""`gradcheck`: compare backprop's gradients with central differences, in float64.

For each checked entry ``theta_i`` of a parameter:

    numeric_i = (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps)
    error_i   = |numeric_i - analytic_i| / (|numeric_i| + |analytic_i|)      (0 when both are 0)

(the tutorial's relative error). The floor ``floor = atol + noise`` is the smallest difference
the check can resolve: ``noise = eps_float64 * max|L| / eps`` is the rounding floor of the
central difference itself (each of the two losses is a float64 rounded to within
``eps_float64 * |L|``, so their difference divided by ``2 eps`` cannot resolve less: 8e-9 for a
loss of 38 and ``eps = 1e-6``; how a backend sums the loss moves the numeric value within it).
An entry is judged

- **relatively** when its gradient is large enough to be (``rtol * scale > floor``, with
  ``scale = |numeric_i| + |analytic_i|``): it passes when ``error_i <= rtol``;
- **absolutely** otherwise (a gradient near 0, whose relative error is noise over noise): it
  passes when ``|numeric_i - analytic_i| <= floor``.

So "OK" means every relatively judged entry is within ``rtol`` (the table's ``max rel. error``
is the worst of those, never above ``rtol`` when it says OK) and every other entry within the
floor (the ``near 0`` column counts them). Small parameters
are checked entry by entry; large ones on a random sample of entries plus random directions
``d`` (``numeric = (L(theta + eps d) - L(theta - eps d)) / 2 eps`` against ``grad . d``,
as Chainer's ``check_backward``). Entries where the loss has a kink (a ReLU input within
``eps`` of 0) are detected by comparing one-sided differences and skipped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import to_numpy
from .losses import Loss, get_loss

if TYPE_CHECKING:
    from .model import Sequential
    from .parameter import Parameter

__all__ = ["GradcheckResult", "gradcheck"]


@dataclass
class GradcheckResult:
    """Worst relative error per parameter, and the verdict."""

    errors: dict[str, float]
    checked: dict[str, int]
    failed: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)
    rtol: float = 1e-6
    atol: float = 1e-9
    #: entries and directions judged absolutely, their gradient too close to 0 for a relative error
    absolute: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every checked entry and direction is within tolerance."""
        return not any(self.failed.values())

    def __bool__(self) -> bool:
        return self.ok

    @property
    def max_error(self) -> float:
        """The worst relative error of the entries judged relatively."""
        return max(self.errors.values(), default=0.0)

    def __str__(self) -> str:
        width = max([len(n) for n in self.errors] + [9])
        lines = [f"{'parameter':<{width}}  {'max rel. error':>14}  {'checked':>7}  {'near 0':>6}  {'failed':>6}  "
                 f"{'kinks':>5}"]  # fmt: skip
        for name, err in self.errors.items():
            checked, failed, kinks = self.checked[name], self.failed[name], self.skipped.get(name, 0)
            near = self.absolute.get(name, 0)
            shown = f"{err:>14.3e}" if checked > near else f"{'-':>14}"
            lines.append(f"{name:<{width}}  {shown}  {checked:>7}  {near:>6}  {failed:>6}  {kinks:>5}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"gradient check {verdict} (relative errors <= rtol={self.rtol:g}; near 0: atol={self.atol:g} "
                     "+ rounding)")
        return "\n".join(lines)


def gradcheck(
    model: Sequential,
    X: Any,
    y: Any,
    loss: Loss | str,
    eps: float = 1e-6,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_entries: int = 64,
    directions: int = 4,
    seed: int = 0,
) -> GradcheckResult:
    """Check ``model``'s backprop gradients on one batch against central differences.

    The check runs on a float64 copy of the model on the model's own device (the model
    itself is untouched), in the model's current train/eval mode with its dropout masks held
    fixed. Parameters with at most ``max_entries`` entries are checked entry by entry; larger
    ones on ``max_entries`` random entries plus ``directions`` random directions.
    Returns a `GradcheckResult`; ``bool(result)`` is the verdict and ``print(result)`` the table.
    """
    loss = get_loss(loss)
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps}")
    if model.training:
        drawn = [layer.path for layer in model.walk() if layer.randomness() == "device"]
        if drawn:
            raise ValueError(
                f"gradcheck cannot hold the masks of Dropout {drawn[0]!r} fixed: masks='device' draws new ones "
                "on every call. Check in eval mode (model.eval()) or with Dropout(p, masks='host')."
            )
    clone = _float64_clone(model)
    backend = clone._require_built()  # a model always is: this only tells the type checker
    rng = np.random.default_rng(seed)
    with backend.activate():
        Xd, T = clone.checked_data(X, y, loss)
        noise = clone.noise_rng.bit_generator
        noise_state = copy.deepcopy(noise.state)

        def evaluate() -> float:
            noise.state = noise_state  # the same dropout masks for every evaluation
            P, _ = clone.apply(Xd, clone.training)
            # the l1/l2 terms are part of what backprop differentiates
            return float(to_numpy(loss.value(backend.ops, P, T) + clone.penalty()))

        noise.state = noise_state
        clone.loss_and_grads(Xd, T, loss)
        result = GradcheckResult({}, {}, {}, {}, rtol, atol, {})
        L0 = evaluate()
        for p in clone.parameters():
            _check_parameter(p, evaluate, L0, eps, rng, max_entries, directions, result)
    return result


def _check_parameter(
    p: Parameter,
    evaluate: Any,
    L0: float,
    eps: float,
    rng: np.random.Generator,
    max_entries: int,
    directions: int,
    result: GradcheckResult,
) -> None:
    backend = p.backend
    theta = np.array(to_numpy(p.data), dtype=np.float64)
    grad = np.array(to_numpy(p.grad), dtype=np.float64)
    flat = theta.reshape(-1)
    if flat.size <= max_entries:
        probes = [_unit(flat.size, i) for i in range(flat.size)]
    else:
        picks = rng.choice(flat.size, size=max_entries, replace=False)
        probes = [_unit(flat.size, int(i)) for i in picks]
        for _ in range(directions):
            d = rng.standard_normal(flat.size)
            probes.append(d / np.linalg.norm(d))
    worst, failed, kinks, absolute = 0.0, 0, 0, 0

    def loss_at(point: np.ndarray) -> float:
        p.data = backend.from_host(point.reshape(theta.shape))
        return evaluate()

    for d in probes:
        L_plus, L_minus = loss_at(flat + eps * d), loss_at(flat - eps * d)
        forward, backward = (L_plus - L0) / eps, (L0 - L_minus) / eps
        if abs(forward - backward) > 1e-2 * (1.0 + abs(forward) + abs(backward)):
            kinks += 1  # a kink between theta - eps d and theta + eps d: not differentiable here
            continue
        numeric = (L_plus - L_minus) / (2.0 * eps)
        analytic = float(grad.reshape(-1) @ d)
        scale = abs(numeric) + abs(analytic)
        diff = abs(numeric - analytic)
        floor = result.atol + _EPS64 * max(abs(L_plus), abs(L_minus)) / eps  # what the difference cannot resolve
        if result.rtol * scale > floor:  # large enough for a relative error to mean something
            worst = max(worst, diff / scale)
            failed += diff > result.rtol * scale
        else:
            absolute += 1
            failed += diff > floor
    p.data = backend.from_host(theta)
    result.errors[p.name] = worst
    result.checked[p.name] = len(probes) - kinks
    result.failed[p.name] = failed
    result.skipped[p.name] = kinks
    result.absolute[p.name] = absolute


_EPS64 = float(np.finfo(np.float64).eps)


def _unit(n: int, i: int) -> np.ndarray:
    e = np.zeros(n)
    e[i] = 1.0
    return e


def _float64_clone(model: Sequential) -> Sequential:
    clone = copy.deepcopy(model)
    if clone.dtype != "float64":
        clone.to(dtype="float64")
    return clone
