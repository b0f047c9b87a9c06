"""KMExClassifier: scikit-learn's estimator checks, known answers on blobs, seeding, inspection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.neighbors import NearestCentroid
from sklearn.utils.estimator_checks import parametrize_with_checks

from protolib.method.kmex import (
    KMExClassifier,
    SmallClassWarning,
    inspect_prototypes,
    squared_distances,
)
from protolib.method.similarity import log_similarity


@parametrize_with_checks([KMExClassifier(n_init=2, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=300, centers=4, std=0.3, seed=0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=6, cluster_std=std, center_box=(-20, 20), random_state=seed)
    return X, y


def test_one_prototype_per_class_recovers_class_means():
    X, y = blobs()
    clf = KMExClassifier(k_per_class=1, n_init=1, random_state=0).fit(X, y)
    means = np.stack([X[y == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(clf.prototypes_, means, atol=1e-10)
    np.testing.assert_array_equal(clf.prototype_labels_, np.arange(4))
    # with one prototype per class KMEx is scikit-learn's NearestCentroid
    nc = NearestCentroid().fit(X, y)
    Xt, _ = blobs(n=200, std=3.0, seed=1)
    np.testing.assert_array_equal(clf.predict(Xt), nc.predict(Xt))


def test_two_fits_with_one_seed_are_identical_and_seeds_matter():
    X, y = blobs(std=4.0)
    a = KMExClassifier(k_per_class=5, n_init=1, init="random", random_state=3).fit(X, y)
    b = KMExClassifier(k_per_class=5, n_init=1, init="random", random_state=3).fit(X, y)
    c = KMExClassifier(k_per_class=5, n_init=1, init="random", random_state=4).fit(X, y)
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)
    assert not np.array_equal(a.prototypes_, c.prototypes_)


def test_equals_classwise_sklearn_kmeans_and_nearest_prototype_rule():
    X, y = blobs(std=3.0)
    clf = KMExClassifier(k_per_class=3, n_init=4, random_state=7).fit(X, y)
    for c in range(4):
        km = KMeans(3, n_init=4, random_state=7).fit(X[y == c])
        np.testing.assert_array_equal(clf.prototypes_[clf.prototype_labels_ == c], km.cluster_centers_)
    brute = ((X[:, None, :] - clf.prototypes_[None]) ** 2).sum(-1)
    np.testing.assert_allclose(squared_distances(X, clf.prototypes_), brute, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(clf.predict(X), clf.prototype_labels_[brute.argmin(1)])
    assert clf.prototype_counts_.sum() == len(X)
    np.testing.assert_array_equal(clf.k_per_class_, [3, 3, 3, 3])


def test_decision_function_and_proba_are_the_scaled_gaussian_similarity():
    X, y = blobs(std=5.0)
    clf = KMExClassifier(k_per_class=2, n_init=2, random_state=0).fit(X, y)
    scores, proba, pred = clf.decision_function(X), clf.predict_proba(X), clf.predict(X)
    np.testing.assert_array_equal(clf.classes_[scores.argmax(1)], pred)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], pred)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-12)
    # the scale is the mean squared distance of a training sample to its k-means centroid
    assert clf.distance_scale_ == pytest.approx(clf.inertia_.sum() / len(X), rel=1e-12)
    # p_c proportional to exp(-d_c^2 / s^2), d_c the distance to the nearest prototype of class c
    d2 = squared_distances(X, clf.prototypes_)
    per_class = np.stack([d2[:, clf.prototype_labels_ == c].min(1) for c in range(4)], 1)
    np.testing.assert_allclose(scores, -(per_class - per_class.min(1, keepdims=True)) / clf.distance_scale_,
                               rtol=1e-9, atol=1e-9)
    w = np.exp(-(per_class - per_class.min(1, keepdims=True)) / clf.distance_scale_)
    np.testing.assert_allclose(proba, w / w.sum(1, keepdims=True), rtol=1e-9, atol=1e-300)


def test_two_classes_by_hand():
    # one prototype per class at 0 and 2 (1-D); training spread: squared distances 1 -> scale 1
    X = np.array([[-1.0], [1.0], [1.0], [3.0]])
    clf = KMExClassifier(k_per_class=1, n_init=1, random_state=0).fit(X, [0, 0, 1, 1])
    assert clf.distance_scale_ == 1.0
    # at x = 0.5: d0^2 = 0.25, d1^2 = 2.25 -> binary score (d0^2 - d1^2) / 1 = -2, p1 = 1 / (1 + e^2)
    np.testing.assert_allclose(clf.decision_function([[0.5]]), [-2.0])
    np.testing.assert_allclose(clf.predict_proba([[0.5]]), [[1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))]])
    np.testing.assert_allclose(clf.predict_proba([[1.0]]), [[0.5, 0.5]])  # equidistant
    assert clf.predict([[1.0]])[0] == 0  # a tie goes to the first class, as argmax does


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e3, 1e6, 1e9])
def test_proba_ranks_classes_like_predict_at_every_scale(scale):
    X, y = blobs(n=400, centers=10, std=4.0)
    Xt, _ = blobs(n=300, centers=10, std=8.0, seed=1)
    # fitted and used at one scale: the same probabilities at every scale
    ref = KMExClassifier(k_per_class=3, n_init=1, random_state=0).fit(X, y)
    clf = KMExClassifier(k_per_class=3, n_init=1, random_state=0).fit(X * scale, y)
    for model, data in ((clf, Xt * scale), (ref, Xt * scale)):  # and far from (or deep inside) the data
        pred, proba, scores = model.predict(data), model.predict_proba(data), model.decision_function(data)
        assert np.isfinite(proba).all() and np.isfinite(scores).all()
        np.testing.assert_array_equal(model.classes_[proba.argmax(1)], pred)
        np.testing.assert_array_equal(model.classes_[scores.argmax(1)], pred)
        np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_allclose(clf.predict_proba(Xt * scale), ref.predict_proba(Xt), atol=1e-6)


def test_a_tie_below_float_precision_still_ranks_the_predicted_class_first():
    # class 0's prototype at -1, class 1's at 1 + 1e-12: x = 1e-13 is nearer class 0 by ~2e-12,
    # which exp() cannot resolve; predict and the argmax of predict_proba must still agree
    X = np.array([[-1.0], [-1.0], [1.0 + 1e-12], [1.0 + 1e-12]])
    clf = KMExClassifier(k_per_class=1, n_init=1, random_state=0).fit(X, [1, 1, 0, 0])
    x = np.array([[1e-13]])
    assert clf.predict(x)[0] == 1
    assert clf.classes_[clf.predict_proba(x).argmax(1)][0] == 1
    np.testing.assert_allclose(clf.predict_proba(x), [[0.5, 0.5]])


def test_log_similarity_of_the_reference_is_nearly_flat_far_from_prototypes():
    # why predict_proba does not use it: at squared distances 1e4 and 2e4 both scores are ~1e-4
    assert log_similarity(np.array([1e4, 2e4])) == pytest.approx([1e-4, 5e-5], rel=1e-3)


def test_small_class_gets_fewer_prototypes_with_a_warning():
    X, y = blobs(n=40, centers=2)
    X, y = np.vstack([X, [[50.0] * 6, [51.0] * 6]]), np.concatenate([y, [2, 2]])
    with pytest.warns(SmallClassWarning, match="class 2 has 2 training samples"):
        clf = KMExClassifier(k_per_class=4, n_init=1, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.k_per_class_, [4, 4, 2])
    np.testing.assert_allclose(np.sort(clf.prototypes_[clf.prototype_labels_ == 2][:, 0]), [50.0, 51.0])


@pytest.mark.parametrize("bad", [dict(k_per_class=0), dict(n_init=0), dict(init="kmeans"),
                                 dict(max_iter=1.5), dict(tol=-1.0)])
def test_bad_parameters_are_refused_at_fit(bad):
    X, y = blobs(n=20, centers=2)
    with pytest.raises(ValueError, match=next(iter(bad))):
        KMExClassifier(**bad).fit(X, y)


def test_inspect_prototypes_on_a_hand_built_set():
    # class 0 at x = 0, 1, 2.5 and 10, 11, 13; class 1 at 100, 101; an extra class-1 point at 9
    X = np.array([0.0, 1.0, 2.5, 10.0, 11.0, 13.0, 100.0, 101.0, 9.0])[:, None]
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    clf = KMExClassifier(k_per_class=2, n_init=5, random_state=0).fit(X[:8], y[:8])
    order = np.argsort(clf.prototypes_[:, 0])
    np.testing.assert_allclose(clf.prototypes_[order, 0], [3.5 / 3, 34 / 3, 100.0, 101.0])
    ins = inspect_prototypes(clf, X, y, n_neighbours=4)
    # nearest samples of the prototype's own class: x = 9 (class 1) never shows for class 0
    np.testing.assert_array_equal(ins.neighbours[order], [[1, 0, 2, 3], [4, 3, 5, 2], [6, 7, 8, -1], [7, 6, 8, -1]])
    np.testing.assert_allclose(ins.distances[order[1]], [1 / 3, 4 / 3, 5 / 3, 53 / 6])
    assert np.isinf(ins.distances[order[2], 3])
    np.testing.assert_array_equal(ins.cluster_sizes[order], [3, 3, 1, 1])
    np.testing.assert_array_equal(ins.n_assigned[order], [3, 4, 1, 1])      # x = 9 goes to 34/3
    np.testing.assert_allclose(ins.purity[order], [1.0, 3 / 4, 1.0, 1.0])


def test_probabilities_are_informative_on_real_digits():
    # scikit-learn's 1,797 digits (64 pixels), 360 held out: the old log-similarity softmax gave a
    # mean largest probability of 0.10 (uniform over 10 classes); exp(-d^2 / s^2) gives ~0.6
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    tr, te = idx[360:], idx[:360]
    clf = KMExClassifier(5, n_init=2, random_state=0).fit(X[tr], y[tr])
    proba, pred = clf.predict_proba(X[te]), clf.predict(X[te])
    np.testing.assert_array_equal(proba.argmax(1), pred)
    assert (pred == y[te]).mean() > 0.95
    assert 0.5 < proba.max(1).mean() < 0.7
    # right answers are more confident than wrong ones
    assert proba.max(1)[pred == y[te]].mean() > proba.max(1)[pred != y[te]].mean()
