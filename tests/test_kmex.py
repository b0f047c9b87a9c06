"""KMExClassifier: scikit-learn's estimator checks, known answers on blobs, seeding, inspection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.neighbors import NearestCentroid
from sklearn.utils.estimator_checks import parametrize_with_checks

from protolib.kmex import KMExClassifier, SmallClassWarning, inspect_prototypes, squared_distances


@parametrize_with_checks([KMExClassifier(n_init=2, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=300, centers=4, std=0.3, seed=0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=6, cluster_std=std, center_box=(-20, 20), random_state=seed)
    return X, y


def test_one_prototype_per_class_recovers_class_means():
    X, y = blobs()
    clf = KMExClassifier(n_prototypes_per_class=1, n_init=1, random_state=0).fit(X, y)
    means = np.stack([X[y == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(clf.prototypes_, means, atol=1e-10)
    np.testing.assert_array_equal(clf.prototype_labels_, np.arange(4))
    # with one prototype per class KMEx is scikit-learn's NearestCentroid
    nc = NearestCentroid().fit(X, y)
    Xt, _ = blobs(n=200, std=3.0, seed=1)
    np.testing.assert_array_equal(clf.predict(Xt), nc.predict(Xt))


def test_two_fits_with_one_seed_are_identical_and_seeds_matter():
    X, y = blobs(std=4.0)
    a = KMExClassifier(n_prototypes_per_class=5, n_init=1, init="random", random_state=3).fit(X, y)
    b = KMExClassifier(n_prototypes_per_class=5, n_init=1, init="random", random_state=3).fit(X, y)
    c = KMExClassifier(n_prototypes_per_class=5, n_init=1, init="random", random_state=4).fit(X, y)
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)
    assert not np.array_equal(a.prototypes_, c.prototypes_)


def test_equals_classwise_sklearn_kmeans_and_nearest_prototype_rule():
    X, y = blobs(std=3.0)
    clf = KMExClassifier(n_prototypes_per_class=3, n_init=4, random_state=7).fit(X, y)
    for c in range(4):
        km = KMeans(3, n_init=4, random_state=7).fit(X[y == c])
        np.testing.assert_array_equal(clf.prototypes_[clf.prototype_labels_ == c], km.cluster_centers_)
    brute = ((X[:, None, :] - clf.prototypes_[None]) ** 2).sum(-1)
    np.testing.assert_allclose(squared_distances(X, clf.prototypes_), brute, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(clf.predict(X), clf.prototype_labels_[brute.argmin(1)])
    assert clf.prototype_counts_.sum() == len(X)
    np.testing.assert_array_equal(clf.n_prototypes_per_class_, [3, 3, 3, 3])


def test_decision_function_and_proba_agree_with_predict():
    X, y = blobs(std=5.0)
    clf = KMExClassifier(n_prototypes_per_class=2, n_init=2, random_state=0).fit(X, y)
    scores, proba, pred = clf.decision_function(X), clf.predict_proba(X), clf.predict(X)
    np.testing.assert_array_equal(clf.classes_[scores.argmax(1)], pred)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], pred)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # the score is log((d^2 + 1) / (d^2 + eps)) of the nearest prototype of the class
    d2 = squared_distances(X, clf.prototypes_)[:, clf.prototype_labels_ == 1].min(1)
    np.testing.assert_allclose(scores[:, 1], np.log((d2 + 1) / (d2 + 1e-4)))


def test_small_class_gets_fewer_prototypes_with_a_warning():
    X, y = blobs(n=40, centers=2)
    X, y = np.vstack([X, [[50.0] * 6, [51.0] * 6]]), np.concatenate([y, [2, 2]])
    with pytest.warns(SmallClassWarning, match="class 2 has 2 training samples"):
        clf = KMExClassifier(n_prototypes_per_class=4, n_init=1, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.n_prototypes_per_class_, [4, 4, 2])
    np.testing.assert_allclose(np.sort(clf.prototypes_[clf.prototype_labels_ == 2][:, 0]), [50.0, 51.0])


@pytest.mark.parametrize("bad", [dict(n_prototypes_per_class=0), dict(n_init=0), dict(init="kmeans"),
                                 dict(max_iter=1.5), dict(tol=-1.0)])
def test_bad_parameters_are_refused_at_fit(bad):
    X, y = blobs(n=20, centers=2)
    with pytest.raises(ValueError, match=next(iter(bad))):
        KMExClassifier(**bad).fit(X, y)


def test_inspect_prototypes_on_a_hand_built_set():
    # class 0 at x = 0, 1, 2.5 and 10, 11, 13; class 1 at 100, 101; an extra class-1 point at 9
    X = np.array([0.0, 1.0, 2.5, 10.0, 11.0, 13.0, 100.0, 101.0, 9.0])[:, None]
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    clf = KMExClassifier(n_prototypes_per_class=2, n_init=5, random_state=0).fit(X[:8], y[:8])
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
