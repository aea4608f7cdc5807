"""Every model in the registry learns from a slice of the sample and beats chance clearly."""

from __future__ import annotations

import numpy as np
import pytest

from kaggle_digits import models
from kaggle_digits.errors import UsageError

# Small enough for the whole file to run in well under a minute on 2 cores.
QUICK = {
    "softmax": {"epochs": "30"},
    "logreg": {},
    "random-forest": {"n_estimators": "50"},
    "knn": {},
    "mlp": {"epochs": "8"},
    "fast": {"epochs": "3", "batch_size": "64"},
    "cnn": {"epochs": "3", "filters": "16", "batch_size": "64"},
    "deotte": {"epochs": "3", "filters": "16", "bn_momentum": "0.9"},
    # Each member sees half the rows (one fold held out): smaller batches give it enough steps.
    "ensemble": {"epochs": "4", "members": "2", "filters": "8", "batch_size": "32", "workers": "1"},
}


@pytest.mark.parametrize("name", ["logreg", "softmax", "ensemble"])
def test_predict_before_fit_is_one_clear_error(name, sample):
    """As scikit-learn's check_is_fitted: a usage error that says what to do, not an AttributeError."""
    model = models.create(name, models.params_for(name), seed=1)
    with pytest.raises(
        models.NotFittedError, match=rf"model '{name}' is not trained yet.*'make train MODEL={name}'"
    ) as raised:
        model.predict(sample.train_images[:5])
    assert raised.value.exit_code == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", list(models.REGISTRY))
def test_model_learns_saves_and_loads(name, sample, tmp_path):
    assert name in QUICK, "every registered model needs a quick setting here"
    train_x, train_y = sample.train_images[:2000], sample.train_labels[:2000]
    test_x, test_y = sample.train_images[4000:4600], sample.train_labels[4000:4600]
    model = models.create(name, models.params_for(name, QUICK[name]), seed=1)
    history = model.fit(train_x, train_y, validation=(test_x, test_y), verbose=False)
    probabilities = model.predict_proba(test_x)
    assert probabilities.shape == (600, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    accuracy = float(np.mean(model.predict(test_x) == test_y))
    assert accuracy > 0.6, f"{name}: {accuracy:.3f} on 600 held-out digits (chance is 0.1)"
    if hasattr(model.params, "epochs"):
        assert len(history.curves["val_loss"]) >= 1 and 1 <= history.best_epoch <= model.params.epochs
    model.save(tmp_path)
    again = type(model).load(tmp_path, model.params, model.seed)
    assert (again.predict(test_x) == model.predict(test_x)).all()


def test_softmax_keeps_the_tutorial_hyperparameters():
    params = models.params_for("softmax")
    assert (params.epochs, params.batch_size, params.learning_rate) == (50, 100, 1e-4)


def test_overrides_are_typed_and_checked():
    assert models.params_for("cnn", {"epochs": "7", "dropout": "0.5"}).epochs == 7
    with pytest.raises(UsageError, match="no parameter 'epoch'"):
        models.params_for("cnn", {"epoch": "7"})
    with pytest.raises(UsageError, match="expected int"):
        models.params_for("cnn", {"epochs": "many"})
    with pytest.raises(UsageError, match="must be at least 1"):
        models.params_for("cnn", {"epochs": "0"})
    with pytest.raises(UsageError, match="must be positive"):
        models.params_for("cnn", {"dropout": "-0.5"})
    with pytest.raises(UsageError, match="unknown model 'resnet'"):
        models.params_for("resnet")


@pytest.mark.slow
def test_same_seed_same_predictions(sample):
    x, y = sample.train_images[:800], sample.train_labels[:800]
    runs = []
    for _ in range(2):
        model = models.create("mlp", models.params_for("mlp", {"epochs": "2"}), seed=7)
        model.fit(x, y, verbose=False)
        runs.append(model.predict_proba(sample.train_images[4000:4200]))
    # The same seed, data and code: the same model, up to float noise (never bit-for-bit on every CPU).
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)


def test_elastic_distortion_alone_is_still_augmentation():
    plain = {"rotation": "0", "zoom": "0", "shift": "0"}
    assert not models.create("cnn", models.params_for("cnn", plain), seed=1).augment
    assert models.create("cnn", models.params_for("cnn", {**plain, "elastic": "34"}), seed=1).augment


@pytest.mark.slow
def test_ensemble_members_hold_out_different_folds_in_turn_or_in_processes(sample, tmp_path):
    """Every row is held out from exactly one member, so the out-of-fold estimate covers every row;
    members trained in worker processes (as on a machine with many cores) come back whole."""
    images, labels = sample.train_images[:2000], sample.train_labels[:2000]
    for workers in ("1", "2"):
        params = models.params_for(
            "ensemble", {"members": "2", "epochs": "3", "filters": "8", "batch_size": "32", "workers": workers}
        )
        model = models.create("ensemble", params, seed=3)
        history = model.fit(images, labels, verbose=False)
        assert history.out_of_fold_rows == 2000 and 0.5 < history.out_of_fold_accuracy <= 1, (
            workers,
            history.out_of_fold_accuracy,
        )
        assert len(model.members) == 2 and model.predict_proba(images[:50]).shape == (50, 10)
        if workers == "1":
            assert history.curves["val_loss"], "the first member draws the learning curves on its held-out fold"
            # Saved and loaded again, each member keeps its own seed (as trained), not the ensemble's.
            model.save(tmp_path)
            loaded = type(model).load(tmp_path, model.params, model.seed)
            assert (
                [member.seed for member in loaded.members]
                == [model.member_seed(index) for index in range(2)]
                == [3, 1003]
            )


def test_fused_batch_norm_computes_what_keras_batch_norm_computes():
    """The faster layer is a drop-in: same outputs in training and inference, same moving averages."""
    from kaggle_digits.lazy import keras as _keras
    from kaggle_digits.models.keras_models import batch_norm_layer

    keras = _keras()
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 6, 6, 8)).astype(np.float32)
    reference, fused = keras.layers.BatchNormalization(momentum=0.9), batch_norm_layer()(momentum=0.9)
    for layer in (reference, fused):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 8))
        layer.beta.assign(np.linspace(-1.0, 1.0, 8))
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True), atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, atol=1e-5)
    # TensorFlow's kernel folds the unbiased batch variance into the average (n/(n-1) = 2304/2303), Keras the biased.
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=1e-3)
    np.testing.assert_allclose(fused(x, training=False), reference(x, training=False), rtol=1e-3, atol=1e-3)
    flat = x.reshape(64, -1)  # not an image tensor: Keras' own code path
    np.testing.assert_allclose(
        batch_norm_layer()()(flat, training=True), keras.layers.BatchNormalization()(flat, training=True), atol=1e-4
    )


@pytest.mark.slow
def test_fused_batch_norm_trains_under_mixed_precision_as_on_a_gpu():
    """On a GPU the toolkit trains in mixed float16 (a Kaggle kernel with --remote kaggle): the fused layer takes
    float16 maps with float32 statistics. Checked on the CPU, which runs the same policy, slowly."""
    from kaggle_digits.lazy import keras as _keras
    from kaggle_digits.models.keras_models import deotte_network

    keras = _keras()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        network = deotte_network(8, 0.4, 0.9)
        network.compile(optimizer="adam", loss="categorical_crossentropy")
        images = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
        loss = network.train_on_batch(images, keras.utils.to_categorical(np.arange(16) % 10, 10))
        norm = next(layer for layer in network.layers if "batch_normalization" in layer.name)
        assert np.isfinite(loss) and norm.compute_dtype == "float16" and norm.moving_mean.dtype == "float32"
        assert np.abs(norm.moving_mean.numpy()).sum() > 0  # the statistics moved
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_elastic_distortion_shares_the_affine_resampling(sample):
    """The elastic option reads pixels through keras.ops.image.map_coordinates: with no displacement it must give
    what affine_transform gives for the same random affine, and with one it moves pixels but keeps the ink. Outside
    training the layer is the identity."""
    from kaggle_digits.models.keras_models import augment_layer

    augment = augment_layer()
    images = sample.train_images[:32].reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    affine_path = np.asarray(augment(10.0, 0.1, 0.1, seed=5)(images, training=True))
    own_sampler = np.asarray(augment(10.0, 0.1, 0.1, seed=5, elastic=1e-6)(images, training=True))
    np.testing.assert_allclose(own_sampler, affine_path, atol=1e-5)
    assert np.abs(affine_path - images).mean() > 0.01, "rotation, zoom and shift move the strokes"
    distorted = np.asarray(augment(0.0, 0.0, 0.0, seed=3, elastic=34.0)(images, training=True))
    moved = np.abs(distorted - images).mean()
    assert moved > 0.02, f"elastic=34 should move strokes (mean change {moved:.3f})"
    assert distorted.sum() == pytest.approx(float(images.sum()), rel=0.05), "a smooth field keeps the ink"
    np.testing.assert_array_equal(np.asarray(augment(10.0, 0.1, 0.1, seed=5)(images, training=False)), images)


def test_distorted_copies_are_made_once_with_scipy_and_keep_the_digits(sample):
    from kaggle_digits.models.keras_models import elastic_copies

    images = sample.train_images[:300]
    copies = elastic_copies(images, 2, 34.0, 4.0, seed=5)
    assert copies.shape == (600, 784) and copies.dtype == np.uint8
    np.testing.assert_array_equal(copies, elastic_copies(images, 2, 34.0, 4.0, seed=5))  # the seed decides them
    first, second = copies[:300].astype(int), copies[300:].astype(int)
    assert (
        np.abs(first - images).mean() > 5 and np.abs(first - second).mean() > 5
    )  # strokes move, each copy its own way
    assert first.sum() == pytest.approx(images.astype(int).sum(), rel=0.05)  # a smooth field keeps the ink
    # With copies made beforehand, the online augmentation does the affine part only (no second elastic pass).
    model = models.create("cnn", models.params_for("cnn", {"distorted_copies": "2", "elastic": "34"}), seed=1)
    assert model.augment


@pytest.mark.slow
def test_a_cnn_trains_on_its_pool_of_distorted_copies(sample):
    """An epoch is len(images) draws from the originals and their copies: the schedule's steps stay the same."""
    x, y = sample.train_images[:1000], sample.train_labels[:1000]
    params = models.params_for("cnn", {"epochs": "2", "filters": "8", "batch_size": "100", "distorted_copies": "1"})
    model = models.create("cnn", params, seed=2)
    history = model.fit(
        x, y, validation=(sample.train_images[4000:4200], sample.train_labels[4000:4200]), verbose=False
    )
    assert len(history.curves["loss"]) == 2
    assert model.trainer.optimizer.iterations.numpy() == 2 * 10  # 1,000 rows, batch 100: ten steps an epoch, not twenty
    assert model.predict(sample.train_images[4000:4200]).shape == (200,)


def test_the_presets_move_to_the_long_schedule_on_a_gpu_unless_told_otherwise():
    from kaggle_digits.models.keras_models import on_this_device

    cnn, ensemble = models.params_for("cnn"), models.params_for("ensemble")
    assert (on_this_device(cnn, gpu=False).epochs, on_this_device(cnn, gpu=True).epochs) == (13, 40)
    assert (on_this_device(ensemble, gpu=False).members, on_this_device(ensemble, gpu=True).members) == (5, 15)
    assert on_this_device(ensemble, gpu=True).epochs == 40  # and each member trains the long schedule
    # A user's epochs or members hold on every device; the GPU preset can still be set on its own.
    assert on_this_device(models.params_for("cnn", {"epochs": "7"}), gpu=True).epochs == 7
    assert on_this_device(models.params_for("ensemble", {"members": "2"}), gpu=True).members == 2
    assert on_this_device(models.params_for("cnn", {"epochs": "7", "gpu_epochs": "30"}), gpu=True).epochs == 30
    assert on_this_device(models.params_for("cnn", {"gpu_epochs": "0"}), gpu=True).epochs == 13
