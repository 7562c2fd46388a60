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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.errors import ModelError
from mer_bench.types import FoldData, ModelFactory
from mer_bench_plugins.models.sklearn_io import load_estimators, save_estimators

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


def _pipeline(classifier, select_k: int | None):
    """Standardise, keep the ``select_k`` best features by ANOVA F (all when None), classify."""
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [("scale", StandardScaler())]
    if select_k is not None:
        steps.append(("select", SelectKBest(f_classif, k=select_k)))
    return Pipeline([*steps, ("svm", classifier)])


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


class SVMFactory(ModelFactory):
    settings_model = SVMSettings

    def __init__(self, name: str, feature: str):
        self.name = name
        self.feature = feature

    def build(self, settings: SVMSettings, n_classes: int, seed: int) -> SVM:
        return SVM(settings, n_classes, seed, self.name)

    def load(self, folder: Path) -> SVM:
        """The model :meth:`SVM.save` wrote to ``folder``, loaded without running code from it."""
        from sklearn.pipeline import Pipeline

        state, meta = load_estimators(folder, self.name, TRUSTED, {"pipeline": Pipeline}, SVMSettings, LEGACY_FILE)
        model = SVM(meta["settings"], int(meta["n_classes"]), int(meta["seed"]), self.name)
        model.pipeline, model.chosen = state["pipeline"], dict(meta.get("chosen", {}))
        return model


@hookimpl
def mer_bench_models():
    return [SVMFactory("svm-handcrafted", "handcrafted"), SVMFactory("opensmile-svm", "compare-functionals")]
