"""scikit-learn estimators over the library: `MLPClassifier` and `MLPRegressor`.

They take scikit-learn's MLP hyperparameters (plus ``device=`` and ``dtype=``) as constructor
arguments, train a `bp.Sequential` of `Dense` layers (``model_``) with ``fit`` / ``partial_fit``
and pass `sklearn.utils.estimator_checks.check_estimator`, so they work in `Pipeline`,
`GridSearchCV`, `cross_val_score`, ``clone`` and ``joblib``. This module needs scikit-learn
(``pip install "backprop-nn[sklearn]"``); ``import backprop`` does not import it.

    from backprop.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=50, device="cuda", random_state=0)
    clf.fit(X, y).predict_proba(X[:2])      # clf.model_ is the trained bp.Sequential

Differences from `sklearn.neural_network`: no ``lbfgs`` (the solvers are the library's
optimizers), no ``sample_weight``, no multi-label classification; the classifier always has
one output per class and trains softmax cross-entropy on them (also for two classes), and the
regressor trains the plain mean squared error (scikit-learn halves it), so ``loss_curve_``
values are on the library's scale. ``early_stopping`` and the ``tol`` / ``n_iter_no_change``
rule monitor a loss (the validation loss, or the training loss), as `bp.EarlyStopping` does.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # missing, or older than 1.6 (no validate_data): tests hide it in a subprocess
    raise ImportError('backprop.sklearn needs scikit-learn (>= 1.6): pip install "backprop-nn[sklearn]"') from exc

from .backends import to_numpy
from .callbacks import EarlyStopping
from .history import History
from .layers import GELU, Dense, Layer, ReLU, Sigmoid, Tanh
from .model import Sequential
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .validation import choice, integer, real

__all__ = ["MLPClassifier", "MLPRegressor"]

#: hidden-layer activations by scikit-learn's names (and "gelu"); "identity" adds no layer
_ACTIVATIONS: dict[str, type[Layer] | None] = {
    "identity": None, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU, "gelu": GELU,
}  # fmt: skip
_SOLVERS = ("adam", "sgd", "adamw", "rmsprop", "adagrad")
_FLOATS = (np.float64, np.float32)


class _BaseMLP(BaseEstimator):
    """What both estimators share: the hyperparameters, the model, the training loop."""

    _loss: str  # the library's loss the model trains
    n_outputs_: int

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        device: Any = "cpu",
        dtype: str | None = None,
    ):
        # scikit-learn's rule: store the arguments as given, check them in fit
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ subclasses fill in
    def _targets(self, y: np.ndarray, first: bool, incremental: bool) -> tuple[np.ndarray, int]:
        """The targets the model trains on and its number of outputs; ``first``: the model is
        about to be built (else they must fit the one there is), by `partial_fit` if ``incremental``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def _train(self, X: Any, y: Any, *, epochs: int | None, incremental: bool) -> None:
        """`fit` (``epochs=None``: up to ``max_iter``, with stopping) and `partial_fit` (one
        epoch). Every hyperparameter is checked before anything of ``self`` changes."""
        owner = type(self).__name__
        continuing = hasattr(self, "model_") and (incremental or bool(self.warm_start))
        X, y = validate_data(self, X, y, dtype=_FLOATS, reset=not continuing, **self._y_options())
        T, n_outputs = self._targets(y, not continuing, incremental)
        batch_size = self._batch_size(X.shape[0])
        stopper, validation = None, None
        if epochs is None:
            epochs = integer(self.max_iter, "max_iter", minimum=1, owner=owner)
            patience = integer(self.n_iter_no_change, "n_iter_no_change", minimum=1, owner=owner)
            tol = real(self.tol, "tol", low=0.0, owner=owner)
            fraction = real(self.validation_fraction, "validation_fraction", low=0.0, high=1.0, low_open=True,
                            high_open=True, owner=owner)  # fmt: skip
            # sklearn stops after n_iter_no_change epochs without improvement; EarlyStopping after patience + 1
            stopper = EarlyStopping("val_loss" if self.early_stopping else "loss", patience - 1, tol, "min",
                                    restore_best_weights=bool(self.early_stopping))  # fmt: skip
        elif self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not continuing:
            model = self._build(X, n_outputs, batch_size, _seed(self.random_state))
            self.optimizer_ = self._optimizer(model)
            self.model_, self.history_ = model, History()
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs but the fitted model has {self.n_outputs_}")
        self.n_outputs_ = n_outputs
        if stopper is not None and self.early_stopping:
            X, T, validation = self._split(X, T, fraction)
        before = len(self.history_)
        history = self.model_.fit(
            X, T, loss=self._loss, optimizer=self.optimizer_, epochs=epochs, batch_size=batch_size,
            shuffle=bool(self.shuffle), validation_data=validation, early_stopping=stopper,
            initial_epoch=before, history=self.history_, verbose=2 if self.verbose else 0,
        )  # fmt: skip
        self.n_iter_ = len(history) - before
        self.loss_curve_ = list(history["loss"])
        self.best_loss_ = float(np.nanmin(self.loss_curve_))
        if stopper is not None and stopper.stopped_epoch is None:
            warnings.warn(
                f"Maximum iterations ({epochs}) reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _y_options(self) -> dict[str, Any]:
        return {}

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        return min(integer(self.batch_size, "batch_size", minimum=1, owner=type(self).__name__), n)

    def _build(self, X: np.ndarray, n_outputs: int, batch_size: int, seed: int | None) -> Sequential:
        """The model: ``Dense`` layers of ``hidden_layer_sizes`` with the activation between
        them, a last ``Dense`` to ``n_outputs``. ``alpha`` is scikit-learn's L2 penalty,
        ``0.5 * alpha * sum(W**2) / batch_size`` added to each batch's loss. ``dtype=None``
        follows ``X`` as scikit-learn's MLP does: float32 data trains in float32, the rest in
        float64."""
        owner = type(self).__name__
        n_features = X.shape[1]
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        sizes = [integer(s, "hidden_layer_sizes", minimum=1, owner=owner) for s in sizes]
        act = _ACTIVATIONS[choice(self.activation, "activation", list(_ACTIVATIONS), owner=owner)]
        l2 = 0.5 * real(self.alpha, "alpha", low=0.0, owner=owner) / batch_size
        layers: list[Layer] = []
        for fan_in, fan_out in zip([n_features, *sizes], sizes):
            layers.append(Dense(fan_in, fan_out, l2=l2))
            if act is not None:
                layers.append(act())
        layers.append(Dense(([n_features, *sizes])[-1], n_outputs, l2=l2))
        dtype = self.dtype if self.dtype is not None else X.dtype.name
        return Sequential(*layers, device=self.device, dtype=dtype, seed=seed)

    def _optimizer(self, model: Sequential) -> Optimizer:
        owner = type(self).__name__
        solver = choice(self.solver, "solver", _SOLVERS, owner=owner)
        lr = real(self.learning_rate_init, "learning_rate_init", low=0.0, low_open=True, owner=owner)
        params = model.parameters()
        if solver == "sgd":
            momentum = real(self.momentum, "momentum", low=0.0, high=1.0, owner=owner)
            return SGD(params, lr, momentum=momentum, nesterov=bool(self.nesterovs_momentum) and momentum > 0)
        if solver in ("adam", "adamw"):
            cls = Adam if solver == "adam" else AdamW
            return cls(params, lr, betas=(self.beta_1, self.beta_2), eps=real(self.epsilon, "epsilon", low=0.0))
        return (RMSprop if solver == "rmsprop" else Adagrad)(params, lr)

    def _split(
        self, X: np.ndarray, T: np.ndarray, fraction: float
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Hold out ``fraction`` of the data for early stopping (stratified by class for the
        classifier), drawn from the model's seed."""
        stratify = T if isinstance(self, ClassifierMixin) else None
        X_train, X_val, T_train, T_val = train_test_split(
            X, T, test_size=fraction, random_state=self.model_.seed % 2**32, stratify=stratify
        )
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
            )
        return X_train, T_train, (X_val, T_val)

    def _outputs(self, X: Any) -> np.ndarray:
        """The model's outputs for ``X`` as a host array (logits for the classifier)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return np.asarray(to_numpy(self.model_.predict(X)))


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained by backprop: scikit-learn's
    `~sklearn.neural_network.MLPClassifier` API on any device.

    The model (``model_``, a `bp.Sequential`) ends with one output per class, the logits, and
    trains softmax cross-entropy on them, two classes included (``decision_function`` then gives
    ``logit(P(classes_[1]))``). Labels may be of any type (strings too); ``classes_`` are the
    sorted unique labels. ``predict_proba`` is the softmax of the logits (float64 rows that
    sum to 1).

    Parameters
    ----------
    hidden_layer_sizes:
        Widths of the hidden ``Dense`` layers (an int for one layer).
    activation:
        Between hidden layers: ``"relu"``, ``"tanh"``, ``"logistic"``, ``"identity"`` or ``"gelu"``.
    solver:
        The optimizer: ``"adam"`` (with ``beta_1``, ``beta_2``, ``epsilon``), ``"sgd"`` (with
        ``momentum``, ``nesterovs_momentum``), ``"adamw"``, ``"rmsprop"`` or ``"adagrad"``,
        with step size ``learning_rate_init``.
    alpha:
        L2 penalty, scikit-learn's: ``0.5 * alpha * sum(W**2) / batch_size`` added to each
        batch's loss (the batch size of the `fit` that built the model, for every batch).
    batch_size:
        Samples per step; ``"auto"`` is ``min(200, n_samples)``.
    max_iter:
        Epochs (passes over the data) at most per `fit`; `partial_fit` runs one.
    shuffle, random_state:
        Shuffle the samples each epoch. ``random_state`` (int, ``RandomState`` or ``None``) seeds
        the model: initial weights, shuffling, the early-stopping split; an int is the model's
        ``seed``.
    tol, n_iter_no_change:
        Stop when the training loss (the validation loss with ``early_stopping``) has not
        improved by more than ``tol`` for ``n_iter_no_change`` epochs; otherwise a
        ``ConvergenceWarning`` says ``max_iter`` was reached.
    early_stopping, validation_fraction:
        Hold out that fraction of the data (stratified) and keep the weights of the epoch with
        the lowest validation loss.
    warm_start:
        A new `fit` continues from the fitted model and optimizer state instead of starting over.
    device, dtype:
        Where the model computes (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a `bp.Device`) and in
        which float type (``None``: float32 for float32 data, float64 otherwise).
    verbose:
        Print one line per epoch.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, n_outputs_:
        As scikit-learn's.
    model_, optimizer_:
        The trained `bp.Sequential` and its optimizer (with its state, for warm starts).
    n_iter_, loss_curve_, best_loss_, history_:
        Epochs the last call ran, the training loss of every epoch (penalty included) and the
        lowest, and the `bp.History` of all epochs (``"loss"``, ``"lr"``, ``"val_loss"``).
    """

    _loss = "cross_entropy"

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train on ``(X, y)`` for up to ``max_iter`` epochs (see the class); returns ``self``."""
        self._train(X, y, epochs=None, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch on ``(X, y)``, continuing the fitted model. The first call (before any
        `fit`) needs ``classes``, every label `y` will ever hold."""
        if not hasattr(self, "model_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = _classes(classes)
        elif classes is not None and not np.array_equal(_classes(classes), self.classes_):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {self.classes_!r}"
            )
        self._train(X, y, epochs=1, incremental=True)
        return self

    def _targets(self, y: np.ndarray, first: bool, incremental: bool) -> tuple[np.ndarray, int]:
        check_classification_targets(y)
        if first and not incremental:  # (a first partial_fit took classes_ from its classes=)
            self.classes_ = _classes(y)
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(f"y has classes not in classes_ {self.classes_!r}: {np.unique(y[unknown])!r}")
        return index.astype(np.int64), len(self.classes_)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, shape ``(n_samples,)``."""
        Z = self._outputs(X)
        return self.classes_[np.argmax(Z, axis=1)]

    def decision_function(self, X: Any) -> np.ndarray:
        """The logits, ``(n_samples, n_classes)``; for two classes the difference of the two,
        ``(n_samples,)``, positive where ``classes_[1]`` is predicted."""
        Z = self._outputs(X).astype(np.float64)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``:
        the softmax of the logits, computed in float64."""
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The logarithm of `predict_proba` (a log-softmax, exact far into the tails)."""
        Z = self._outputs(X).astype(np.float64)
        Z -= Z.max(axis=1, keepdims=True)
        return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor trained by backprop: scikit-learn's
    `~sklearn.neural_network.MLPRegressor` API on any device.

    The model (``model_``) ends with a ``Dense`` layer of one output per target and trains the
    mean squared error. ``y`` may be 1-D (`predict` returns ``(n_samples,)``) or 2-D
    (``(n_samples, n_outputs)``, returned as such, one column included). The parameters and
    attributes are `MLPClassifier`'s (without ``classes_``).
    """

    _loss = "mse"

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train on ``(X, y)`` for up to ``max_iter`` epochs; returns ``self``."""
        self._train(X, y, epochs=None, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch on ``(X, y)``, continuing the fitted model (or starting one)."""
        self._train(X, y, epochs=1, incremental=True)
        return self

    def _y_options(self) -> dict[str, Any]:
        return {"multi_output": True, "y_numeric": True}

    def _targets(self, y: np.ndarray, first: bool, incremental: bool) -> tuple[np.ndarray, int]:
        if first:
            self._y_ndim = y.ndim
        T = y.reshape(-1, 1) if y.ndim == 1 else y
        return T, T.shape[1]

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: ``(n_samples,)`` for a 1-D ``y`` in `fit`, else ``(n_samples, n_outputs)``."""
        P = self._outputs(X)
        return P[:, 0] if self._y_ndim == 1 else P

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _classes(labels: Any) -> np.ndarray:
    return np.unique(np.asarray(labels))


def _seed(random_state: Any) -> int | None:
    """The model seed: an int is used as it is (``random_state=3`` builds the model
    ``bp.Sequential(..., seed=3)`` would), a ``RandomState`` gives one draw, ``None`` a fresh seed."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
