"""KMEx: a nearest-prototype classifier whose prototypes are class-wise k-means centroids.

Section 3.2 of the paper (after Gautam et al., 2024): freeze the CNN, take the pooled
embeddings z (N, D) of the training images (evaluation transforms), run k-means with K/C
clusters on the z of each class, and classify a new z by the class of its nearest
prototype (Euclidean). The paper writes the similarity as exp(-||z - p||^2); the nearest
prototype is the one of largest similarity, so both readings give the same prediction;
``predict_proba`` uses exp(-d^2 / s^2) with a bandwidth s^2 fitted to the data (see the Notes of
:class:`KMExClassifier`).

:class:`KMExClassifier` is a scikit-learn estimator (it passes ``parametrize_with_checks``);
it works on numpy arrays in float64 so that a prediction never depends on the batch it was
computed in. :func:`inspect_prototypes` gives, for each prototype, its nearest training
samples within its class and how many points it attracts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.cluster import KMeans
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class SmallClassWarning(UserWarning):
    """A class has fewer training samples than the number of prototypes asked for."""


def squared_distances(X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """||x_i - p_k||^2 for X: (N, D) and P: (K, D), as (N, K) float64, clipped at 0."""
    X, P = np.asarray(X, dtype=np.float64), np.asarray(P, dtype=np.float64)
    d2 = (X * X).sum(1)[:, None] + (P * P).sum(1)[None, :] - 2.0 * X @ P.T
    return np.maximum(d2, 0.0)


def _first_max_is(values: np.ndarray, column: np.ndarray) -> None:
    """Make ``values[i, column[i]]`` the first maximum of every row i, in place.

    Only rows where another class is closer than float precision are touched: the value of
    ``column`` is raised to one unit in the last place above the first maximum, so that argmax
    (which takes the first maximum) agrees with the nearest-prototype rule.
    """
    rows = np.arange(len(values))
    first = values.argmax(1)
    off = first != column
    if off.any():
        values[rows[off], column[off]] = np.nextafter(values[rows[off], first[off]], np.inf)


def distance_scale(mean_sq_to_prototype: float, X: np.ndarray) -> float:
    """The squared-distance unit of the KMEx scores: the mean squared distance of a training sample
    to its prototype; the data's total variance when that is 0 (every sample a prototype); else 1."""
    for scale in (mean_sq_to_prototype, float(X.var(0).sum()) if len(X) else 0.0):
        if np.isfinite(scale) and scale > 0:
            return float(scale)
    return 1.0


class KMExClassifier(ClassifierMixin, BaseEstimator):
    """Nearest-prototype classifier with class-wise k-means prototypes (KMEx).

    For each class c, k-means with ``k_per_class`` clusters is run on the training
    samples of that class; the centroids are the prototypes of c. A sample is assigned the
    class of its nearest prototype (Euclidean distance).

    Parameters
    ----------
    k_per_class : int, default=5
        K/C, the number of prototypes of each class. A class with fewer samples n_c gets
        ``min(k_per_class, n_c)`` prototypes and a :class:`SmallClassWarning`.
    init : {"k-means++", "random"}, default="k-means++"
        Initialisation of each class's k-means (see :class:`sklearn.cluster.KMeans`).
    n_init : int, default=10
        Number of k-means restarts per class; the run of lowest inertia is kept. Explicit
        because scikit-learn's own default changed (10, then "auto").
    max_iter : int, default=300
        Maximum number of k-means iterations per run.
    tol : float, default=1e-4
        k-means convergence tolerance (relative to the data's variance).
    random_state : int, RandomState instance or None, default=None
        Passed unchanged to the k-means of every class, in the order of ``classes_``; an int
        makes ``fit`` deterministic.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    prototypes_ : ndarray of shape (n_prototypes, n_features)
        The prototypes (float64), stacked class by class in the order of ``classes_``.
    prototype_labels_ : ndarray of shape (n_prototypes,)
        The class label of each prototype.
    k_per_class_ : ndarray of shape (n_classes,)
        How many prototypes each class received.
    prototype_counts_ : ndarray of shape (n_prototypes,)
        Number of training samples in each prototype's k-means cluster (within its class).
    inertia_ : ndarray of shape (n_classes,)
        k-means inertia (sum of squared distances to the centroids) of each class.
    n_iter_ : ndarray of shape (n_classes,)
        Iterations of the retained k-means run of each class.
    n_features_in_ : int
        Number of features seen during ``fit``.
    distance_scale_ : float
        The unit of squared distance of the scores: the mean squared distance of a training
        sample to the prototype of its k-means cluster (see Notes).

    See Also
    --------
    sklearn.neighbors.NearestCentroid : the special case of one prototype per class
        (the class mean), which ``k_per_class=1`` reproduces.

    Notes
    -----
    Scores and probabilities. With d_c^2 the squared distance of a sample to the nearest
    prototype of class c and d_min^2 the smallest of them (the prototype ``predict`` uses),
    ``decision_function`` gives ``-(d_c^2 - d_min^2) / distance_scale_`` and ``predict_proba``
    its softmax: p_c proportional to exp(-d_c^2 / s^2), the paper's similarity exp(-d^2) with a
    bandwidth s^2 = ``distance_scale_`` learnt at ``fit``. Why this choice:

    * it is the similarity the paper writes, made independent of the units of z: scaling the
      data by any factor gives the same probabilities, whereas exp(-d^2) itself is exactly 0 or
      1 in float64 at the scale of CNN embeddings;
    * it is computed in log space from differences to the nearest prototype, so it never
      overflows or underflows into NaN, and the predicted class always has score 0 and the
      largest probability (where two classes are within float precision of each other, the
      predicted one is raised by one unit in the last place so that argmax agrees);
    * the KMEx reference's log-similarity log((d^2 + 1) / (d^2 + 1e-4)) (:func:`protolib.method.similarity.log_similarity`)
      is about 1 / d^2 once d^2 >> 1, so on real embeddings every class scores nearly 0 and its
      softmax is nearly uniform (the mean largest probability was 0.10 on ten digit classes),
      and far from the data float rounding reorders the classes.

    The bandwidth is not tuned to calibrate: on 360 held-out scikit-learn digits (64 pixels,
    K/C = 5) the mean largest probability is 0.60 at 97.8 % accuracy, so the probabilities are
    cautious; a narrower bandwidth would be sharper.

    Examples
    --------
    >>> import numpy as np
    >>> from protolib.method.kmex import KMExClassifier
    >>> X = np.array([[0., 0.], [0., 1.], [10., 0.], [10., 1.], [0., 20.], [10., 20.]])
    >>> y = np.array([0, 0, 0, 0, 1, 1])
    >>> clf = KMExClassifier(k_per_class=2, n_init=3, random_state=0).fit(X, y)
    >>> clf.prototypes_[np.argsort(clf.prototypes_[:, 0] + 100 * clf.prototype_labels_)]
    array([[ 0. ,  0.5],
           [10. ,  0.5],
           [ 0. , 20. ],
           [10. , 20. ]])
    >>> clf.predict([[9., 2.], [1., 18.]])
    array([0, 1])
    """

    def __init__(self, k_per_class=5, *, init="k-means++", n_init=10, max_iter=300,
                 tol=1e-4, random_state=None):
        self.k_per_class = k_per_class
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    _parameter_constraints: dict = {
        "k_per_class": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"})],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def _fit_class(self, Xc: np.ndarray, label) -> KMeans:
        k = min(self.k_per_class, len(Xc))
        if k < self.k_per_class:
            warnings.warn(
                f"class {label} has {len(Xc)} training samples, fewer than "
                f"k_per_class={self.k_per_class}; it gets {k} prototypes",
                SmallClassWarning, stacklevel=3,
            )
        km = KMeans(n_clusters=k, init=self.init, n_init=self.n_init, max_iter=self.max_iter,
                    tol=self.tol, random_state=self.random_state)
        with warnings.catch_warnings():  # duplicate points: fewer distinct clusters than k
            warnings.filterwarnings("ignore", message="Number of distinct clusters")
            return km.fit(Xc)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn the prototypes of every class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings z.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : KMExClassifier
            The fitted classifier.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        protos, labels, counts, inertia, n_iter = [], [], [], [], []
        for c, label in enumerate(self.classes_):
            km = self._fit_class(X[y_index == c], label)
            protos.append(km.cluster_centers_)
            labels.append(np.full(len(km.cluster_centers_), c))
            counts.append(np.bincount(km.labels_, minlength=len(km.cluster_centers_)))
            inertia.append(km.inertia_)
            n_iter.append(km.n_iter_)
        self.prototypes_ = np.concatenate(protos).astype(np.float64)
        self._prototype_class_index = np.concatenate(labels)
        self.prototype_labels_ = self.classes_[self._prototype_class_index]
        self.k_per_class_ = np.array([len(p) for p in protos])
        self.prototype_counts_ = np.concatenate(counts)
        self.inertia_ = np.array(inertia, dtype=np.float64)
        self.n_iter_ = np.array(n_iter)
        self.distance_scale_ = distance_scale(self.inertia_.sum() / len(X), X)
        return self

    def distances(self, X) -> np.ndarray:
        """Squared Euclidean distances (n_samples, n_prototypes) from X to every prototype."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return squared_distances(X, self.prototypes_)

    def nearest_prototype(self, X) -> np.ndarray:
        """Index (n_samples,) of the nearest prototype of each sample (ties: lowest index)."""
        return self.distances(X).argmin(1)

    def _relative_scores(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Scores -(d_c^2 - d_min^2) / distance_scale_ (n_samples, n_classes), at most 0, and the
        class index of ``predict`` (n_samples,), from one distance matrix."""
        d2 = self.distances(X)
        nearest = self._prototype_class_index[d2.argmin(1)]
        class_d2 = np.full((len(d2), len(self.classes_)), np.inf)
        for c in range(len(self.classes_)):
            class_d2[:, c] = d2[:, self._prototype_class_index == c].min(1)
        scores = -(class_d2 - class_d2[np.arange(len(d2)), nearest][:, None]) / self.distance_scale_
        return scores, nearest

    def decision_function(self, X) -> np.ndarray:
        """Per-class score -(d_c^2 - d_min^2) / ``distance_scale_``: 0 for the predicted class,
        negative for the others (d_c the distance to the class's nearest prototype).

        Returns (n_samples, n_classes), or (n_samples,) with two classes (score of
        ``classes_[1]`` minus that of ``classes_[0]``, scikit-learn's binary convention).
        """
        scores, nearest = self._relative_scores(X)
        _first_max_is(scores, nearest)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed in log space (finite unless a probability underflows)."""
        scores, nearest = self._relative_scores(X)
        log_p = scores - logsumexp(scores, axis=1, keepdims=True)
        _first_max_is(log_p, nearest)
        return log_p

    def predict_proba(self, X) -> np.ndarray:
        """Softmax over classes of :meth:`decision_function`: (n_samples, n_classes), rows sum to 1,
        the largest probability on the class of :meth:`predict`."""
        scores, nearest = self._relative_scores(X)
        p = np.exp(scores - logsumexp(scores, axis=1, keepdims=True))
        _first_max_is(p, nearest)
        return p

    def predict(self, X) -> np.ndarray:
        """Class of the nearest prototype, (n_samples,)."""
        check_is_fitted(self)
        return self.prototype_labels_[self.nearest_prototype(X)]


@dataclass
class PrototypeInspection:
    """What a prototype looks like in the data.

    neighbours: (K, n) indices into the inspected set of each prototype's nearest samples
    *of its own class* (closest first); distances: (K, n) their Euclidean distances;
    cluster_sizes: (K,) training samples in the prototype's k-means cluster;
    n_assigned: (K,) samples of the inspected set (any class) whose nearest prototype it is;
    purity: (K,) fraction of those that belong to the prototype's class (nan when none).
    """

    neighbours: np.ndarray
    distances: np.ndarray
    cluster_sizes: np.ndarray
    n_assigned: np.ndarray
    purity: np.ndarray


def inspect_prototypes(clf: KMExClassifier, X, y, n_neighbours: int = 5) -> PrototypeInspection:
    """Nearest same-class samples of each prototype of ``clf`` in (X, y), and its assignments.

    X: (N, D) embeddings (usually the training set the prototypes were fitted on), y: (N,).
    A class with fewer than ``n_neighbours`` samples pads its rows with index -1 and
    distance inf.
    """
    y = np.asarray(y)
    d2 = clf.distances(X)
    K = len(clf.prototypes_)
    neighbours = np.full((K, n_neighbours), -1)
    dist = np.full((K, n_neighbours), np.inf)
    for k, label in enumerate(clf.prototype_labels_):
        members = np.flatnonzero(y == label)
        order = members[np.argsort(d2[members, k], kind="stable")[:n_neighbours]]
        neighbours[k, :len(order)], dist[k, :len(order)] = order, np.sqrt(d2[order, k])
    nearest = d2.argmin(1)
    n_assigned = np.bincount(nearest, minlength=K)
    correct = np.bincount(nearest, weights=(y == clf.prototype_labels_[nearest]), minlength=K)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(n_assigned > 0, correct / n_assigned, np.nan)
    return PrototypeInspection(neighbours, dist, clf.prototype_counts_.copy(), n_assigned, purity)


__all__ = ["KMExClassifier", "PrototypeInspection", "SmallClassWarning", "distance_scale", "inspect_prototypes",
           "squared_distances"]
