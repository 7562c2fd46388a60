"""``svm-handcrafted`` and ``opensmile-svm``: an RBF SVM on clip-level audio features.

The classifier of the Coimbra group's MER work (Malheiro et al. 2016, Panda et al. 2018):
features standardised, optionally reduced to the k best by an ANOVA F-test (standing in
for their ReliefF ranking), then an RBF-kernel SVM. C and gamma are chosen by a grid
search with stratified cross-validation **inside the fold's training part only**; the
validation and test parts never influence them. The chosen model is refitted on the
whole training part.

- ``svm-handcrafted`` consumes ``handcrafted`` (librosa descriptors approximating their
  Marsyas / MIR Toolbox / PsySound features).
- ``opensmile-svm`` consumes ``compare-functionals``, the openSMILE ComParE 2016
  functionals PMEmo ships as its baseline features (optional extra ``opensmile``).

Assumptions where the papers are silent or unavailable here: the grid C in 2^-5..2^15
and gamma in 2^-15..2^3 in steps of 2^2 (LIBSVM's guide), 5 inner folds scored by macro
F1, Platt-scaled probabilities (``CalibratedClassifierCV``, sigmoid, on the inner folds). The
validation part is only scored, since an SVM has no epochs to stop.

For a regression task (``va``) each dimension gets its own RBF SVR, tuned the same way
(the same grids, ``inner_folds`` shuffled folds of the training part, scored by R²; the
features selected by a univariate regression F-test), with predictions clipped to the
targets' [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.errors import ModelError
from mer_bench.types import FoldData, ModelFactory
from mer_bench_plugins.models.sklearn_io import load_estimators, save_estimators, saved_outputs

#: Types beyond skops's defaults (scikit-learn's public estimators, NumPy, builtins) that the
#: fitted pipeline holds. Each is rebuilt from stored attributes (none runs code of its own
#: on loading: no __reduce__, and _SigmoidCalibration's __setstate__ is BaseEstimator's
#: version check), and only these exact names are trusted:
#: - _CalibratedClassifier: CalibratedClassifierCV's fitted SVC and calibrators, a plain container;
#: - _SigmoidCalibration: one Platt scaling, two floats a_ and b_;
#: - StratifiedKFold: the inner folds kept as CalibratedClassifierCV's cv parameter, three
#:   plain values (n_splits, shuffle, random_state), used only by fit;
#: - f_classif: SelectKBest's scoring function (with select_k), looked up by this exact name
#:   in scikit-learn and called only by fit, never by predict_proba.
TRUSTED = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
)
#: What older versions saved instead, a pickle: refused, never opened.
LEGACY_FILE = "svm.pkl"


def _powers_of_two(low: int, high: int, step: int) -> list[float]:
    return [2.0**e for e in range(low, high + 1, step)]


class SVMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    c_grid: list[float] = Field(default_factory=lambda: _powers_of_two(-5, 15, 2), min_length=1)
    gamma_grid: list[float] = Field(default_factory=lambda: _powers_of_two(-15, 3, 2), min_length=1)
    inner_folds: int = Field(5, ge=2, description="stratified folds of the training part for the grid search")
    select_k: int | None = Field(None, gt=0, description="keep the k features with the best ANOVA F; None keeps all")


def _pipeline(estimator, select_k: int | None, regression: bool = False):
    """Standardise, keep the ``select_k`` best features by an F-test (ANOVA for classes, a
    univariate regression for values; all when None), then ``estimator``."""
    from sklearn.feature_selection import SelectKBest, f_classif, f_regression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [("scale", StandardScaler())]
    if select_k is not None:
        steps.append(("select", SelectKBest(f_regression if regression else f_classif, k=select_k)))
    return Pipeline([*steps, ("svm", estimator)])


class SVM:
    """A scaler, an optional selector and an RBF SVC, tuned and fitted on one fold's training part."""

    def __init__(self, settings: SVMSettings, n_classes: int, seed: int, name: str = "svm"):
        self.name = name
        self.settings = settings
        self.n_classes = n_classes
        self.seed = seed
        self.pipeline = None
        self.chosen: dict[str, float] = {}

    def fit(self, train: FoldData, val: FoldData) -> list[dict]:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.svm import SVC

        s = self.settings
        x, y = np.asarray(train.x, dtype=np.float64), train.y
        counts = np.bincount(y)
        fewest = int(counts[counts > 0].min()) if counts.any() else 0
        if fewest < s.inner_folds:
            raise ModelError(
                f"the SVM's grid search needs at least {s.inner_folds} training tracks of every quadrant present "
                f"(inner_folds); one has {fewest}: lower inner_folds or use more data"
            )
        if s.select_k is not None and s.select_k > x.shape[1]:
            raise ModelError(f"select_k = {s.select_k} but the feature has only {x.shape[1]} values")
        inner = StratifiedKFold(s.inner_folds, shuffle=True, random_state=self.seed)
        search = GridSearchCV(
            _pipeline(SVC(kernel="rbf"), s.select_k),
            {"svm__C": s.c_grid, "svm__gamma": s.gamma_grid},
            scoring="f1_macro",
            cv=inner,
            refit=False,
        )
        search.fit(x, y)
        best = SVC(kernel="rbf", C=search.best_params_["svm__C"], gamma=search.best_params_["svm__gamma"])
        # Platt-scaled probabilities for the chosen model only (inside the search they would
        # cost a calibration per grid point and change no choice); ensemble=False keeps one
        # SVM fitted on the whole training part, calibrated on its inner-fold predictions.
        calibrated = CalibratedClassifierCV(best, method="sigmoid", cv=inner, ensemble=False)
        self.pipeline = _pipeline(calibrated, s.select_k).fit(x, y)
        self.chosen = {"C": float(search.best_params_["svm__C"]), "gamma": float(search.best_params_["svm__gamma"])}
        record = {
            "epoch": 1,
            "inner_cv_macro_f1": float(search.best_score_),
            **self.chosen,
            "accuracy": float((self.pipeline.predict(x) == y).mean()),
            "kept": True,
        }
        if len(val.y):
            record["val_accuracy"] = float((self.predict_proba(val.x).argmax(axis=1) == val.y).mean())
        return [record]

    def predict_proba(self, x) -> np.ndarray:
        if self.pipeline is None:
            raise ModelError("svm: predict_proba called before fit or load")
        # Quadrants absent from the training part get probability 0.
        out = np.zeros((len(x), self.n_classes))
        if len(x):
            out[:, self.pipeline.classes_] = self.pipeline.predict_proba(np.asarray(x, dtype=np.float64))
        return out

    def save(self, folder: Path) -> None:
        """The pipeline in ``model.skops``; settings, chosen C and gamma in ``sklearn-model.json`` (no pickle)."""
        meta = {
            "settings": self.settings.model_dump(mode="json"),
            "n_classes": self.n_classes,
            "seed": int(self.seed),
            "chosen": self.chosen,
        }
        save_estimators(folder, self.name, {"pipeline": self.pipeline}, meta)


class SVR:
    """One RBF SVR pipeline per dimension, each tuned and fitted on one unit's training part."""

    def __init__(self, settings: SVMSettings, n_outputs: int, seed: int, name: str = "svm"):
        self.name = name
        self.settings = settings
        self.n_outputs = n_outputs
        self.seed = seed
        self.pipelines: list = []
        self.chosen: list[dict[str, float]] = []

    def fit(self, train: FoldData, val: FoldData) -> list[dict]:
        from sklearn.model_selection import GridSearchCV, KFold
        from sklearn.svm import SVR as RBFRegressor

        s = self.settings
        x, y = np.asarray(train.x, dtype=np.float64), np.asarray(train.y, dtype=np.float64)
        if len(x) < 2 * s.inner_folds:
            raise ModelError(f"the SVR's grid search needs at least {2 * s.inner_folds} training tracks; got {len(x)}")
        if s.select_k is not None and s.select_k > x.shape[1]:
            raise ModelError(f"select_k = {s.select_k} but the feature has only {x.shape[1]} values")
        inner = KFold(s.inner_folds, shuffle=True, random_state=self.seed)
        record: dict = {"epoch": 1, "kept": True}
        self.pipelines, self.chosen = [], []
        for j in range(self.n_outputs):
            search = GridSearchCV(
                _pipeline(RBFRegressor(kernel="rbf"), s.select_k, regression=True),
                {"svm__C": s.c_grid, "svm__gamma": s.gamma_grid},
                scoring="r2",
                cv=inner,
                refit=True,
            )
            search.fit(x, y[:, j])
            self.pipelines.append(search.best_estimator_)
            self.chosen.append({"C": float(search.best_params_["svm__C"]), "gamma": float(search.best_params_["svm__gamma"])})
            record[f"inner_cv_r2_{j}"] = float(search.best_score_)
        record["loss"] = float(np.mean((self.predict(x) - y) ** 2))
        if len(val.y):
            record["val_loss"] = float(np.mean((self.predict(val.x) - np.asarray(val.y)) ** 2))
        return [record]

    def predict(self, x) -> np.ndarray:
        """One row of values per track, within the targets' range [-1, 1]."""
        if not self.pipelines:
            raise ModelError("svm: predict called before fit or load")
        x = np.asarray(x, dtype=np.float64)
        if not len(x):
            return np.empty((0, self.n_outputs))
        return np.clip(np.stack([p.predict(x) for p in self.pipelines], axis=1), -1.0, 1.0)

    def save(self, folder: Path) -> None:
        """The pipelines in ``model.skops``; settings and each dimension's C and gamma in ``sklearn-model.json``."""
        meta = {
            "settings": self.settings.model_dump(mode="json"),
            "n_classes": 0,
            "n_outputs": self.n_outputs,
            "seed": int(self.seed),
            "chosen": self.chosen,
        }
        save_estimators(folder, self.name, {f"pipeline_{j}": p for j, p in enumerate(self.pipelines)}, meta)


class SVMFactory(ModelFactory):
    settings_model = SVMSettings
    task_kinds = ("classification", "regression")

    def __init__(self, name: str, feature: str):
        self.name = name
        self.feature = feature

    def build(self, settings: SVMSettings, n_classes: int, seed: int) -> SVM:
        return SVM(settings, n_classes, seed, self.name)

    def build_regressor(self, settings: SVMSettings, n_outputs: int, seed: int) -> SVR:
        return SVR(settings, n_outputs, seed, self.name)

    def load(self, folder: Path) -> SVM | SVR:
        """The model :meth:`SVM.save` or :meth:`SVR.save` wrote to ``folder``, loaded without running code from it."""
        from sklearn.pipeline import Pipeline

        outputs = saved_outputs(folder)
        if outputs:
            expect = {f"pipeline_{j}": Pipeline for j in range(outputs)}
            state, meta = load_estimators(folder, self.name, TRUSTED, expect, SVMSettings, LEGACY_FILE)
            model = SVR(meta["settings"], outputs, int(meta["seed"]), self.name)
            model.pipelines = [state[f"pipeline_{j}"] for j in range(outputs)]
            model.chosen = list(meta.get("chosen", []))
            return model
        state, meta = load_estimators(folder, self.name, TRUSTED, {"pipeline": Pipeline}, SVMSettings, LEGACY_FILE)
        model = SVM(meta["settings"], int(meta["n_classes"]), int(meta["seed"]), self.name)
        model.pipeline, model.chosen = state["pipeline"], dict(meta.get("chosen", {}))
        return model


@hookimpl
def mer_bench_models():
    return [SVMFactory("svm-handcrafted", "handcrafted"), SVMFactory("opensmile-svm", "compare-functionals")]
