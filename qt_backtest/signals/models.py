"""Model slots and the walk-forward runner that produces out-of-sample votes.

A model slot is anything with ``fit(X, y)`` (``y`` the class index: 0 SELL, 1 HOLD, 2 BUY) and
``predict_proba(X)`` returning three columns in that order; :func:`make_model` builds the tree
slots ``xgb`` and ``lgbm``. Each slot trains with balanced class weights and a fixed seed. The
runner fits one model per walk-forward fold and predicts only that fold's block, so every vote
is out of sample; bars before the first fold have no vote (the model is inactive there).

Folds are independent, so the runner trains several at once (``workers``; in threads, in
spawned processes or on a Dask cluster, :mod:`qt_backtest.signals.parallel`) with the same
votes as one after another (I-WF-1, I-WF-2). A neural slot may instead start each fold from
the previous fold's weights (``warm_start``, I-WF-3); such folds are trained in sequence, in
runs whose length ``warm_start`` fixes, and the runs train at once (I-WF-4).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

from qt_backtest.codes import NEURAL_MODELS, TREE_MODELS
from qt_backtest.signals.labels import CLASS_NAMES
from qt_backtest.signals.parallel import (
    DASK_HINT,
    Task,
    check_execution,
    require_pickle,
    run_tasks,
    threads_per_task,
)
from qt_backtest.signals.walkforward import Fold, WalkForward

CLASSES = 3


class ModelSlot(Protocol):
    """What the runner needs from a model."""

    def fit(self, features: np.ndarray, classes: np.ndarray) -> Any: ...

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...


def balanced_weights(classes: np.ndarray) -> np.ndarray:
    """Per-row weights ``n / (k * count(class))`` over the k classes present."""
    present, counts = np.unique(classes, return_counts=True)
    per_class = dict(
        zip(present.tolist(), (len(classes) / (len(present) * counts)).tolist(), strict=True)
    )
    return np.array([per_class[c] for c in classes.tolist()])


class _EstimatorSlot:
    """Wraps a scikit-learn-style classifier: fits on the classes present in the fold with
    balanced weights and always answers with the three class columns."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._present: np.ndarray | None = None
        self._estimator: Any = None

    def fit(self, features: np.ndarray, classes: np.ndarray) -> _EstimatorSlot:
        classes = np.asarray(classes, dtype=np.int64)
        if classes.size == 0:
            raise ValueError("cannot fit a model on an empty training set")
        if not np.isin(classes, np.arange(CLASSES)).all():
            raise ValueError("classes must be 0 (SELL), 1 (HOLD) or 2 (BUY)")
        self._present = np.unique(classes)
        self._estimator = None
        if self._present.size > 1:
            encoded = np.searchsorted(self._present, classes)
            self._estimator = self._factory()
            self._estimator.fit(features, encoded, sample_weight=balanced_weights(classes))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if self._present is None:
            raise RuntimeError("the model is not fitted")
        probabilities = np.zeros((len(features), CLASSES))
        if self._estimator is None:  # one class in training: it is certain
            probabilities[:, self._present[0]] = 1.0
        else:
            probabilities[:, self._present] = self._estimator.predict_proba(features)
        return probabilities


def _xgb(seed: int, n_jobs: int, params: dict[str, Any]) -> Callable[[], Any]:
    from xgboost import XGBClassifier

    settings: dict[str, Any] = dict(
        n_estimators=200,
        max_depth=4,
        learning_rate=0.05,
        subsample=0.8,
        colsample_bytree=0.8,
        tree_method="hist",
        random_state=seed,
        n_jobs=n_jobs,
        verbosity=0,
    )
    settings.update(params)
    return lambda: XGBClassifier(**settings)


def _lgbm(seed: int, n_jobs: int, params: dict[str, Any]) -> Callable[[], Any]:
    from lightgbm import LGBMClassifier

    settings: dict[str, Any] = dict(
        n_estimators=200,
        num_leaves=15,
        learning_rate=0.05,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        n_jobs=n_jobs,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    settings.update(params)
    return lambda: LGBMClassifier(**settings)


MODEL_SLOTS = dict(zip(TREE_MODELS, (_xgb, _lgbm), strict=True))
#: Slots that read lookback windows of the features (PyTorch, extra ``deep``).
NEURAL_SLOTS = NEURAL_MODELS


def estimator_slot(factory: Callable[[], Any]) -> ModelSlot:
    """Make a model slot of any scikit-learn-style classifier.

    ``factory`` returns a fresh, unfitted estimator with ``fit(X, y, sample_weight=...)`` and
    ``predict_proba``. The slot trains it on the classes present in each fold with balanced
    weights and answers with all three class columns (SELL, HOLD, BUY).
    """
    return _EstimatorSlot(factory)


def make_model(name: str, seed: int = 0, n_jobs: int = 1, **params: Any) -> ModelSlot:
    """A fresh model for slot ``name`` (``"xgb"``, ``"lgbm"``, ``"nhits"``, ``"patchtst"``),
    seeded and deterministic.

    ``params`` override the slot's defaults: the estimator's own parameter names for the tree
    slots, :class:`~qt_backtest.signals.neural.NeuralConfig` fields for the neural ones (which
    need the ``deep`` extra; without PyTorch they raise an ImportError saying so).
    """
    if name in NEURAL_SLOTS:
        from qt_backtest.signals.neural import NeuralConfig, NeuralSlot

        return NeuralSlot(name, NeuralConfig(**params), seed=seed, n_jobs=n_jobs)
    if name not in MODEL_SLOTS:
        raise ValueError(
            f"no model slot {name!r}; available: {', '.join([*MODEL_SLOTS, *NEURAL_SLOTS])} (or "
            "pass any object "
            "with fit/predict_proba to walk_forward_predict)"
        )
    return _EstimatorSlot(MODEL_SLOTS[name](seed, n_jobs, params))


def lookback_windows(values: np.ndarray, lookback: int) -> np.ndarray:
    """Per bar, the ``lookback`` rows ending at it: shape (bars, lookback, features), a view.

    Rows before the first bar are NaN, so a window never reaches past the data it is given --
    and never ahead of its own bar.
    """
    if lookback < 1:
        raise ValueError(f"lookback must be >= 1, got {lookback}")
    padded = np.concatenate([np.full((lookback - 1, values.shape[1]), np.nan), values])
    windows = np.lib.stride_tricks.sliding_window_view(padded, lookback, axis=0)
    return windows.transpose(0, 2, 1)  # (bars, lookback, features)


class WarmStartSlot(ModelSlot, Protocol):
    """A model slot that can start training from another fitted model of its kind."""

    def warm_start_from(self, previous: Any) -> None: ...


def train_chain(
    factory: Callable[[], ModelSlot],
    values: np.ndarray,
    targets: np.ndarray,
    offset: int,
    lookback: int | None,
    folds: Sequence[Fold],
    warm: bool,
) -> list[tuple[int, np.ndarray | None]]:
    """Train and predict consecutive folds: the unit of work the runners run at once.

    Parameters
    ----------
    factory : callable
        Returns a fresh, unfitted model; called once per fold.
    values : ndarray, shape (rows, features)
        Feature rows ``offset`` to ``offset + rows`` of the series: every row the folds train
        on and predict, and the ``lookback - 1`` rows before them (or the series' start).
    targets : ndarray, shape (rows,)
        Labels (-1, 0, 1 or NaN) aligned with ``values``.
    offset : int
        Position in the series of ``values[0]`` (fold positions are series positions).
    lookback : int or None
        Window length of a model that reads windows (see :func:`lookback_windows`).
    folds : sequence of Fold
        Consecutive folds in time order.
    warm : bool
        Start each fold after the first from the previous fold's fitted model (I-WF-3). That
        model trained on rows before its own test block only, which all lie before this fold's.

    Returns
    -------
    list of (int, ndarray or None)
        Per fold, its number and its test block's probabilities, shape (test bars, 3) in the
        order SELL, HOLD, BUY; None for a fold without a labelled training row.
    """
    inputs = values if lookback is None else lookback_windows(values, lookback)
    answers: list[tuple[int, np.ndarray | None]] = []
    previous: ModelSlot | None = None
    for fold in folds:
        rows = np.arange(fold.train_start, fold.train_stop) - offset
        rows = rows[~np.isnan(targets[rows])]
        if rows.size == 0:
            answers.append((fold.number, None))
            continue
        model = factory()
        if warm and previous is not None:
            cast(WarmStartSlot, model).warm_start_from(previous)
        model.fit(inputs[rows], targets[rows].astype(np.int64) + 1)
        answer = np.asarray(
            model.predict_proba(inputs[fold.test_start - offset : fold.test_stop - offset]),
            dtype=np.float64,
        )
        if answer.shape != (fold.test_stop - fold.test_start, CLASSES):
            raise ValueError(
                f"predict_proba must return one row per bar and {CLASSES} columns (SELL, HOLD, "
                f"BUY), got shape {answer.shape}; wrap a plain classifier with estimator_slot"
            )
        answers.append((fold.number, answer))
        previous = model
    return answers


@dataclass(frozen=True)
class _Run:
    """One model on one series, planned: its inputs, its chains of folds, what it needs."""

    model: str | Callable[[], ModelSlot]
    params: dict[str, Any]
    index: pd.Index
    values: np.ndarray
    targets: np.ndarray
    lookback: int | None
    chains: list[list[Fold]]
    warm: bool  # each chain's later folds start from the fold before (I-WF-3)
    process_wide: bool  # its models keep process-wide state (concurrent only in processes)


def fold_chains(folds: Sequence[Fold], warm_start: int) -> list[list[Fold]]:
    """The folds cut into runs of ``1 + warm_start`` consecutive folds (the last one shorter):
    each run's first fold trains from scratch and the others from their predecessor (I-WF-3).
    The cut depends on ``warm_start`` only, never on how many runs train at once."""
    size = 1 + warm_start
    return [list(folds[start : start + size]) for start in range(0, len(folds), size)]


def _plan(
    features: pd.DataFrame,
    labels: pd.Series,
    model: str | Callable[[], ModelSlot],
    splitter: WalkForward,
    seed: int,
    warm_start: int,
    params: Mapping[str, Any] | None,
) -> _Run:
    """Check one run's inputs and cut its folds into chains (I-WF-2, I-WF-3). A model is
    built first (and thrown away) to read what the runner needs: its lookback, whether it
    keeps process-wide state and whether it can warm-start; its parameters are checked."""
    _check_warm_start(warm_start)
    if not isinstance(features, pd.DataFrame) or not isinstance(labels, pd.Series):
        raise ValueError("features must be a DataFrame and labels a Series")
    if not features.index.equals(labels.index):
        raise ValueError("features and labels must share one index")
    if params and not isinstance(model, str):
        raise ValueError(
            f"params {sorted(params)} are for a slot named by model; a factory sets its own"
        )
    if isinstance(model, str):
        probe = make_model(model, seed, **(params or {}))
    elif callable(model):
        probe = model()
    else:
        raise ValueError(
            f"model must be a slot name or a callable returning a fresh model, got {model!r}"
        )
    if warm_start and not callable(getattr(probe, "warm_start_from", None)):
        raise ValueError(
            f"warm_start={warm_start} needs a model that can start from its predecessor's "
            f"weights (a neural slot: {', '.join(NEURAL_SLOTS)}); {type(probe).__name__} cannot"
        )
    lookback = getattr(probe, "lookback", None)
    return _Run(
        model=model,
        params=dict(params or {}),
        index=features.index,
        values=features.to_numpy(dtype=np.float64),
        targets=labels.to_numpy(dtype=np.float64),
        lookback=None if lookback is None else int(lookback),
        chains=fold_chains(splitter.folds(len(features)), warm_start),
        warm=warm_start > 0,
        process_wide=bool(getattr(probe, "process_wide_state", False)),
    )


def _factory(run: _Run, seed: int, threads: int) -> Callable[[], ModelSlot]:
    """A picklable factory for a slot name (its thread count fixed), or the caller's own."""
    if isinstance(run.model, str):
        return functools.partial(make_model, run.model, seed, threads, **run.params)
    return run.model


def _check_sendable(
    name: str, factory: Callable[[], ModelSlot], executor: str, processes: bool
) -> None:
    """Refuse, with what to do instead, a factory that cannot reach the processes."""
    if executor == "dask":
        try:
            import cloudpickle
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(DASK_HINT) from error
        dumps: Callable[[Any], bytes] = cloudpickle.dumps
        why = "executor='dask' trains on the cluster's workers"
    elif processes:
        dumps = pickle.dumps
        why = (
            "the neural slots train folds at once only in separate processes (PyTorch's random "
            "generator and thread count are process-wide), and a lambda or a local function "
            "does not pickle"
        )
    else:
        return
    require_pickle(
        factory,
        f"the factory of model {name!r}",
        f"{why}; pass a slot name, a module-level factory or functools.partial(make_model, "
        "'nhits', epochs=8), or use workers=1",
        dumps=dumps,
    )


def _tasks(
    runs: dict[Hashable, _Run],
    factories: dict[Hashable, Callable[[], ModelSlot]],
    executor: str,
) -> list[Task]:
    """One task per chain. Local tasks get views of the rows they read; Dask tasks get the
    series' arrays, sent to the cluster once."""
    tasks: list[Task] = []
    for key, run in runs.items():
        before = 0 if run.lookback is None else run.lookback - 1
        for number, chain in enumerate(run.chains):
            if executor == "dask":
                values, targets, start = run.values, run.targets, 0
            else:
                start = max(0, chain[0].train_start - before)
                stop = chain[-1].test_stop
                values, targets = run.values[start:stop], run.targets[start:stop]
            arguments = (factories[key], values, targets, start, run.lookback, chain, run.warm)
            tasks.append(((key, number), train_chain, arguments))
    return tasks


def _votes_frame(index: pd.Index, probabilities: np.ndarray, fold_of_bar: np.ndarray):
    """The runner's output frame from per-bar probabilities (NaN rows: no vote)."""
    predicted = ~np.isnan(probabilities[:, 0])
    best = np.argmax(np.where(predicted[:, None], probabilities, 0.0), axis=1)
    action = np.where(predicted, np.array(CLASS_NAMES, dtype=object)[best], None)
    confidence = np.where(predicted, np.max(np.nan_to_num(probabilities), axis=1), np.nan)
    return pd.DataFrame(
        {
            "action": pd.Categorical(action, categories=list(CLASS_NAMES)),
            "confidence": confidence,
            "p_sell": probabilities[:, 0],
            "p_hold": probabilities[:, 1],
            "p_buy": probabilities[:, 2],
            "fold": fold_of_bar,
        },
        index=index,
    )


def _execute(
    runs: dict[Hashable, _Run],
    *,
    seed: int,
    n_jobs: int | None,
    workers: int,
    executor: str,
    address: str | None,
    on_fold: Callable[[int, int], None] | None,
) -> dict[Hashable, pd.DataFrame]:
    """Train every chain of every run (I-WF-1 to I-WF-4) and assemble each run's votes."""
    chains = sum(len(run.chains) for run in runs.values())
    at_once = max(1, min(workers, chains))
    threads = threads_per_task(n_jobs, workers, executor, address)
    processes = executor == "local" and at_once > 1 and any(r.process_wide for r in runs.values())
    factories = {key: _factory(run, seed, threads) for key, run in runs.items()}
    for key, factory in factories.items():
        _check_sendable(str(key), factory, executor, processes)
    probabilities = {key: np.full((len(run.index), CLASSES), np.nan) for key, run in runs.items()}
    fold_of_bar = {key: np.full(len(run.index), -1, dtype=np.int64) for key, run in runs.items()}
    total = sum(len(chain) for run in runs.values() for chain in run.chains)
    done = 0
    shared = [array for run in runs.values() for array in (run.values, run.targets)]
    results = run_tasks(
        _tasks(runs, factories, executor),
        workers=at_once,
        executor=executor,
        address=address,
        processes=processes,
        shared=shared if executor == "dask" else (),
    )
    for task, answers in results:
        key, number = cast(tuple[Hashable, int], task)
        for fold, (fold_number, answer) in zip(runs[key].chains[number], answers, strict=True):
            if answer is not None:
                probabilities[key][fold.test] = answer
                fold_of_bar[key][fold.test] = fold_number
            done += 1
            if on_fold is not None:
                on_fold(done, total)
    return {
        key: _votes_frame(run.index, probabilities[key], fold_of_bar[key])
        for key, run in runs.items()
    }


def walk_forward_predict(
    features: pd.DataFrame,
    labels: pd.Series,
    model: str | Callable[[], ModelSlot],
    splitter: WalkForward,
    *,
    seed: int = 0,
    n_jobs: int | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    warm_start: int = 0,
    params: Mapping[str, Any] | None = None,
    on_fold: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Out-of-sample votes of one model for every bar, fold by fold.

    Parameters
    ----------
    features : DataFrame, shape (bars, features)
        Features at each bar (NaN allowed: the tree models route it).
    labels : Series of {-1, 0, 1, NaN}
        Training targets aligned with ``features`` (see :func:`make_labels`).
    model : str or callable
        A slot name for :func:`make_model`, or a factory returning a fresh model per fold. A
        model with a ``lookback`` attribute gets windows of shape (rows, lookback, features)
        instead of rows (see :func:`lookback_windows`).
    splitter : WalkForward
        The folds; its purge must cover the labels' horizon.
    seed : int
        Seed of a slot named by ``model`` (a factory seeds its own models).
    n_jobs : int, optional
        Threads each model trains with, for a slot named by ``model``. By default this
        machine's cores divided by the folds trained at once, so that the two multiplied fit
        the cores (I-WF-2); on a remote Dask cluster 1.
    workers : int
        Folds trained at once (I-WF-1). The tree slots train in threads; the neural slots, whose
        training sets PyTorch's process-wide state, in spawned processes (their factory must
        then pickle: a slot name, a module-level factory or a ``functools.partial``; and a
        script that calls this must guard its work with ``if __name__ == "__main__":``, since
        each process imports the main module).
    executor : {"local", "dask"}
        ``"dask"`` trains the folds on a Dask ``distributed`` cluster: the scheduler at
        ``address``, or a local cluster of ``workers`` processes when it is None (needs the
        ``dask`` extra).
    address : str, optional
        The Dask scheduler's address (only with ``executor="dask"``).
    warm_start : int
        After each fold trained from scratch, this many following folds start from their
        predecessor's fitted weights (neural slots only; 0: every fold from scratch). A run of
        ``1 + warm_start`` folds is sequential, and runs train at once (I-WF-3, I-WF-4).
    params : mapping, optional
        Parameters of a slot named by ``model`` (see :func:`make_model`).
    on_fold : callable, optional
        Called with ``(folds done, folds in all)`` as folds finish (for progress).

    Returns
    -------
    DataFrame indexed like ``features``: ``action`` (SELL / HOLD / BUY, missing before the
    first fold), ``confidence`` (the top class probability), ``p_sell``, ``p_hold``,
    ``p_buy`` and ``fold``. The votes are the same whatever ``workers`` and ``executor``, bit
    for bit, for a given thread count; the tree slots' are the same for any thread count too
    (I-WF-2).
    """
    check_execution(workers, executor, address, n_jobs)
    run = _plan(features, labels, model, splitter, seed, warm_start, params)
    return _execute(
        {"": run},
        seed=seed,
        n_jobs=n_jobs,
        workers=workers,
        executor=executor,
        address=address,
        on_fold=on_fold,
    )[""]


def walk_forward_many(
    series: Mapping[str, tuple[pd.DataFrame, pd.Series]],
    models: Sequence[str] | Mapping[str, str | Callable[[], ModelSlot]],
    splitter: WalkForward,
    *,
    seed: int = 0,
    n_jobs: int | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    warm_start: int | Mapping[str, int] = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    on_fold: Callable[[int, int], None] | None = None,
) -> dict[tuple[str, str], pd.DataFrame]:
    """Walk-forward votes of several models on several series, all folds in one pool.

    Every (series, model, run of folds) is one task, so ``workers`` tasks train at once across
    symbols and models: the way to train at once models whose folds are sequential
    (``warm_start``). Arguments are those of :func:`walk_forward_predict`.

    Parameters
    ----------
    series : mapping of str to (DataFrame, Series)
        Per symbol, its features and labels.
    models : sequence of slot names, or mapping of name to slot name or factory
        The models, each trained on every series.
    warm_start : int or mapping of str to int
        One value for every model, or per model name (models left out: 0), so that neural
        slots warm-start while tree slots, which cannot, share the pool.
    params : mapping, optional
        Per model name, the parameters of its slot (see :func:`make_model`).

    Returns
    -------
    dict
        ``(symbol, model name)`` to what :func:`walk_forward_predict` returns, equal to it.
    """
    check_execution(workers, executor, address, n_jobs)
    if not isinstance(models, Mapping):
        if isinstance(models, str) or not all(isinstance(name, str) for name in models):
            raise ValueError(f"models must be slot names or a mapping of names, got {models!r}")
        models = {name: name for name in models}
    if not series or not models:
        raise ValueError("give at least one series and one model")
    params = params or {}
    warm = warm_start if isinstance(warm_start, Mapping) else dict.fromkeys(models, warm_start)
    for argument, given in (("params", params), ("warm_start", warm)):
        unknown = sorted(set(given) - set(models))
        if unknown:
            raise ValueError(
                f"{argument} name model(s) {unknown} that models {list(models)} do not"
            )
    runs: dict[Hashable, _Run] = {
        (symbol, name): _plan(
            features, labels, model, splitter, seed, warm.get(name, 0), params.get(name)
        )
        for symbol, (features, labels) in series.items()
        for name, model in models.items()
    }
    votes = _execute(
        runs,
        seed=seed,
        n_jobs=n_jobs,
        workers=workers,
        executor=executor,
        address=address,
        on_fold=on_fold,
    )
    return {cast(tuple[str, str], key): frame for key, frame in votes.items()}


def _check_warm_start(warm_start: int) -> None:
    if isinstance(warm_start, bool) or not isinstance(warm_start, int) or warm_start < 0:
        raise ValueError(
            "warm_start (folds started from their predecessor after each fold trained from "
            f"scratch) must be an integer >= 0, got {warm_start!r}"
        )
