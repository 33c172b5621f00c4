"""Neural model slots ``nhits`` and ``patchtst`` (PyTorch, the optional ``deep`` extra).

Both read a lookback window of the feature set per bar -- an array of shape
``(rows, lookback, features)`` that :func:`~qt_backtest.signals.walk_forward_predict` builds
from past bars only -- and answer SELL / HOLD / BUY probabilities like the tree slots.

* **N-HiTS-style** (:class:`NHiTSNet`): stacks of MLP blocks, each reading the window pooled at
  its own rate (max-pooling over time); each block adds class logits and removes its backcast
  -- a coarse reconstruction interpolated back to full resolution -- from the input of the next
  block (hierarchical residual structure).
* **PatchTST-style** (:class:`PatchTSTNet`): every feature channel is cut into patches along
  time, patches are embedded and read by a small Transformer encoder (channels independent,
  weights shared), and a linear head maps all channels' patch embeddings to class logits.

Training (:class:`NeuralSlot`) is leak-free within the walk-forward fold: inputs are
standardised with the training rows' statistics only, early stopping watches a validation
split taken from the end of the training rows (time order kept), classes are weighted as
for the tree slots, and everything is seeded (deterministic on the CPU).
"""

from __future__ import annotations

import copy
import math
import threading
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from qt_backtest.codes import NEURAL_MODELS
from qt_backtest.errors import ConfigError
from qt_backtest.parameters import document_parameters, param, validate

CLASSES = 3
#: Held while a network trains or predicts: PyTorch's default random generator (weights'
#: initialisation, dropout) and its intra-op thread count are process-wide, so two fits in
#: threads of one process would draw from each other's stream (I-WF-2).
TORCH_STATE = threading.RLock()
EXTRA_HINT = "the neural model slots need PyTorch: pip install 'qt-backtest[deep]'"


def require_torch() -> Any:
    """The ``torch`` module, or an ImportError naming the extra to install."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(EXTRA_HINT) from error
    return torch


def _counts(value: Any) -> tuple[int, ...]:
    sizes = tuple(value)
    if not sizes or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in sizes
    ):
        raise ValueError(f"pool_sizes must be integers >= 1, got {value!r}")
    return sizes


def _whole(default: int, doc: str, unit: str = "") -> Any:
    return param(default, doc=doc, kind="int", low=1, unit=unit)


@document_parameters
@dataclass(frozen=True)
class NeuralConfig:
    """Size and training of a neural slot (small defaults that train on 2 CPU cores)."""

    lookback: int = _whole(48, "bars per input window, the current bar included", "bars")
    hidden: int = _whole(64, "width of the N-HiTS MLP blocks")
    pool_sizes: tuple[int, ...] = param(
        (8, 4, 1),
        doc="N-HiTS pooling rates, one stack each, coarse to fine (each at most lookback)",
        kind="other",
        check=_counts,
        accepts="integers >= 1",
        unit="bars",
    )
    patch_length: int = _whole(12, "PatchTST patch length (at most lookback)", "bars")
    patch_stride: int = _whole(12, "PatchTST patch stride", "bars")
    d_model: int = _whole(16, "PatchTST embedding width (a multiple of heads)")
    heads: int = _whole(2, "PatchTST attention heads")
    layers: int = _whole(1, "PatchTST encoder layers")
    dropout: float = param(0.1, doc="dropout rate", low=0.0, high=0.9)
    epochs: int = _whole(20, "training epochs at most")
    warm_epochs: int = param(
        1,
        doc="training epochs at most for a fold started from its predecessor's weights",
        kind="int",
        low=1,
        rule="I-WF-3",
    )
    batch_size: int = _whole(256, "rows per training batch", "rows")
    learning_rate: float = param(1e-3, doc="Adam learning rate", low=0.0)
    weight_decay: float = param(1e-4, doc="Adam weight decay", low=0.0)
    patience: int = _whole(4, "epochs without a better validation loss before training stops")
    validation_fraction: float = param(
        0.15,
        doc="share of the time-ordered training rows kept, at the end, for early stopping",
        low=0.0,
        high=0.5,
        unit="share of rows",
    )

    def __post_init__(self) -> None:
        validate(self)
        if any(size > self.lookback for size in self.pool_sizes):
            raise ConfigError(
                f"pool_sizes must be integers in [1, lookback={self.lookback}], "
                f"got {self.pool_sizes!r}",
                name="pool_sizes",
                value=self.pool_sizes,
            )
        if self.patch_length > self.lookback:
            raise ConfigError(
                f"patch_length ({self.patch_length}) must not exceed lookback ({self.lookback})",
                name="patch_length, lookback",
                value=(self.patch_length, self.lookback),
            )
        if self.d_model % self.heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})",
                name="d_model, heads",
                value=(self.d_model, self.heads),
            )

    @property
    def patches(self) -> int:
        return (self.lookback - self.patch_length) // self.patch_stride + 1


def _networks():
    """The two network classes (defined once torch is importable)."""
    torch = require_torch()
    nn = torch.nn

    class NHiTSBlock(nn.Module):
        def __init__(self, lookback: int, features: int, pool: int, hidden: int, dropout: float):
            super().__init__()
            self.pool = pool
            self.coarse = math.ceil(lookback / pool)
            self.lookback = lookback
            self.features = features
            self.mlp = nn.Sequential(
                nn.Linear(self.coarse * features, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
            )
            # backcast at the block's own rate, interpolated to full resolution
            self.backcast = nn.Linear(hidden, self.coarse * features)
            self.logits = nn.Linear(hidden, CLASSES)

        def forward(self, x):  # x: (batch, lookback, features)
            pooled = nn.functional.max_pool1d(
                x.transpose(1, 2), self.pool, self.pool, ceil_mode=True
            )  # (batch, features, coarse)
            state = self.mlp(pooled.flatten(1))
            coarse = self.backcast(state).view(-1, self.features, self.coarse)
            backcast = nn.functional.interpolate(
                coarse, size=self.lookback, mode="linear", align_corners=False
            ).transpose(1, 2)
            return backcast, self.logits(state)

    class NHiTSNet(nn.Module):
        """N-HiTS-style classifier: multi-rate pooled MLP stacks with residual backcasts."""

        def __init__(self, features: int, config: NeuralConfig):
            super().__init__()
            self.blocks = nn.ModuleList(
                NHiTSBlock(config.lookback, features, pool, config.hidden, config.dropout)
                for pool in config.pool_sizes
            )

        def forward(self, x):
            logits = 0.0
            residual = x
            for block in self.blocks:
                backcast, part = block(residual)
                residual = residual - backcast
                logits = logits + part
            return logits

    class PatchTSTNet(nn.Module):
        """PatchTST-style classifier: channel-independent patches through a Transformer."""

        def __init__(self, features: int, config: NeuralConfig):
            super().__init__()
            self.config = config
            self.embed = nn.Linear(config.patch_length, config.d_model)
            self.position = nn.Parameter(torch.zeros(1, config.patches, config.d_model))
            layer = nn.TransformerEncoderLayer(
                config.d_model,
                config.heads,
                dim_feedforward=2 * config.d_model,
                dropout=config.dropout,
                batch_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.head = nn.Sequential(
                nn.Dropout(config.dropout),
                nn.Linear(features * config.patches * config.d_model, CLASSES),
            )

        def forward(self, x):  # x: (batch, lookback, features)
            batch, _, features = x.shape
            series = x.transpose(1, 2).reshape(batch * features, -1)  # one row per channel
            patches = series.unfold(1, self.config.patch_length, self.config.patch_stride)
            tokens = self.embed(patches) + self.position
            encoded = self.encoder(tokens)  # (batch * features, patches, d_model)
            return self.head(encoded.reshape(batch, -1))

    return dict(zip(NEURAL_MODELS, (NHiTSNet, PatchTSTNet), strict=True))


class NeuralSlot:
    """A model slot training one of the networks on lookback windows.

    ``fit(windows, classes)`` and ``predict_proba(windows)`` take arrays of shape
    ``(rows, lookback, features)``; NaN (indicator warm-up, bars before the data) reads as the
    training mean. Attributes after fitting: ``mean_``, ``scale_`` (per feature, from the
    training rows only), ``epochs_run_``, ``best_validation_loss_``, ``warm_started_``.

    Training and prediction hold :data:`TORCH_STATE`, so slots in threads of one process take
    turns; folds train at once in separate processes (``process_wide_state``).
    """

    #: Training sets process-wide PyTorch state: concurrent folds need separate processes.
    process_wide_state: ClassVar[bool] = True

    def __init__(
        self, kind: str, config: NeuralConfig | None = None, seed: int = 0, n_jobs: int = 1
    ) -> None:
        if kind not in NEURAL_MODELS:
            raise ValueError(f"no neural slot {kind!r}; use one of {NEURAL_MODELS}")
        require_torch()
        self.kind = kind
        self.config = config or NeuralConfig()
        self.seed = seed
        self.n_jobs = n_jobs
        self.lookback = self.config.lookback
        self._present: np.ndarray | None = None
        self._network: Any = None
        self._initial_state: dict[str, Any] | None = None

    def warm_start_from(self, previous: NeuralSlot) -> None:
        """Start the next :meth:`fit` from ``previous``'s fitted weights, for at most
        ``warm_epochs`` epochs (I-WF-3); the standardisation is still taken from the new
        training rows. A ``previous`` that learnt no network (one class) leaves a cold start.
        """
        if not isinstance(previous, NeuralSlot) or previous.kind != self.kind:
            raise ValueError(f"a {self.kind} slot can start only from a fitted {self.kind} slot")
        if previous.config != self.config:
            raise ValueError("a slot can start only from a slot of the same configuration")
        if previous._present is None:
            raise ValueError("the slot to start from is not fitted")
        network = previous._network
        self._initial_state = None if network is None else copy.deepcopy(network.state_dict())

    def _standardise(self, windows: np.ndarray) -> np.ndarray:
        scaled = (windows - self.mean_) / self.scale_
        return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def fit(self, windows: np.ndarray, classes: np.ndarray) -> NeuralSlot:
        windows = np.asarray(windows, dtype=np.float64)
        classes = np.asarray(classes, dtype=np.int64)
        if windows.ndim != 3 or windows.shape[1] != self.lookback:
            raise ValueError(
                f"windows must have shape (rows, {self.lookback}, features), got {windows.shape}"
            )
        if classes.size == 0 or classes.shape[0] != windows.shape[0]:
            raise ValueError("need one class per training window, and at least one")
        if not np.isin(classes, np.arange(CLASSES)).all():
            raise ValueError("classes must be 0 (SELL), 1 (HOLD) or 2 (BUY)")
        self._present = np.unique(classes)
        self._network = None
        self.warm_started_ = False
        last = windows[:, -1, :]  # every bar once: its own row of features
        with np.errstate(invalid="ignore"):
            self.mean_ = np.nan_to_num(np.nanmean(last, axis=0))
            scale = np.nanstd(last, axis=0)
        self.scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        if self._present.size == 1:
            return self  # one class in training: it is certain
        with TORCH_STATE:
            self._network = self._train(self._standardise(windows), classes)
        return self

    def _train(self, inputs: np.ndarray, classes: np.ndarray) -> Any:
        """The network trained on standardised windows, with early stopping."""
        torch = require_torch()
        torch.manual_seed(self.seed)
        torch.set_num_threads(self.n_jobs)
        generator = torch.Generator().manual_seed(self.seed)
        features = torch.from_numpy(inputs)
        targets = torch.from_numpy(classes)
        split = round(len(classes) * (1.0 - self.config.validation_fraction))
        validate = 0 < split < len(classes) and self.config.validation_fraction > 0
        train_x, train_y = (features[:split], targets[:split]) if validate else (features, targets)
        counts = np.bincount(classes[: len(train_y)], minlength=CLASSES).astype(np.float64)
        weights = np.where(
            counts > 0, len(train_y) / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0
        )
        loss_function = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
        network = _networks()[self.kind](inputs.shape[2], self.config)
        epochs = self.config.epochs
        if self._initial_state is not None:
            network.load_state_dict(self._initial_state)
            epochs, self.warm_started_ = self.config.warm_epochs, True
        optimiser = torch.optim.Adam(
            network.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )
        best_loss, best_state, stale = math.inf, None, 0
        self.epochs_run_ = 0
        for _ in range(epochs):
            network.train()
            order = torch.randperm(len(train_y), generator=generator)
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start : start + self.config.batch_size]
                optimiser.zero_grad()
                loss = loss_function(network(train_x[batch]), train_y[batch])
                loss.backward()
                optimiser.step()
            self.epochs_run_ += 1
            if not validate:
                continue
            network.eval()
            with torch.no_grad():
                value = float(loss_function(network(features[split:]), targets[split:]))
            if value < best_loss - 1e-6:
                best_loss, best_state, stale = value, copy.deepcopy(network.state_dict()), 0
            else:
                stale += 1
                if stale >= self.config.patience:
                    break
        if best_state is not None:
            network.load_state_dict(best_state)
        self.best_validation_loss_ = best_loss
        network.eval()
        return network

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        torch = require_torch()
        if self._present is None:
            raise RuntimeError("the model is not fitted")
        windows = np.asarray(windows, dtype=np.float64)
        probabilities = np.zeros((len(windows), CLASSES))
        if self._network is None:
            probabilities[:, self._present[0]] = 1.0
            return probabilities
        absent = np.setdiff1d(np.arange(CLASSES), self._present)
        with TORCH_STATE, torch.no_grad():
            torch.set_num_threads(self.n_jobs)  # the thread count it trained with (I-WF-2)
            for start in range(0, len(windows), 4096):
                block = torch.from_numpy(self._standardise(windows[start : start + 4096]))
                logits = self._network(block)
                logits[:, torch.from_numpy(absent)] = -math.inf  # a class never seen
                probabilities[start : start + 4096] = torch.softmax(logits, 1).double().numpy()
        return probabilities

    def get_params(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed, **asdict(self.config)}
