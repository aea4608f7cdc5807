"""Keras models: the tutorial's softmax regression, an MLP, the CNN presets and a CNN ensemble.

They speak Keras 3 (layers, `keras.ops`, `keras.random`, numpy batches), so each runs on every Keras backend:
TensorFlow (the default, and Kaggle's image), JAX and PyTorch (KERAS_BACKEND). Keras comes through its one door
(lazy.keras) on the first fit or load, and imports TensorFlow only where TensorFlow is the backend. The one
TensorFlow-only path left, the fused batch norm, lives in FusedBatchNormalization with its figure.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from .. import config, lazy
from ..errors import UsageError
from ..splits import kfold_splits
from .base import History, Model

log = logging.getLogger("kaggle_digits")


@cache
def batch_norm_layer():
    """Keras' BatchNormalization; on the TensorFlow backend computed by TensorFlow's fused kernel on image tensors.

    Keras 3 computes batch norm from separate ops (moments, then arithmetic: several passes over each
    activation map, forward and backward); `FusedBatchNormV3` does it in one. Measured here (TensorFlow, CPU):
    2-3x faster per layer, `fast` (16-channel maps at full resolution) trains about twice as fast, `cnn`
    about 10-15% faster per step. The maths and the saved weights are Keras' own, and the class is registered
    under the same name on every backend, so a model saved under one backend loads under another; on JAX and
    PyTorch (and for anything but a 4-D NHWC tensor) it is Keras' own layer (keras-team/keras-core#225).
    """
    keras = lazy.keras()
    fused = keras.backend.backend() == "tensorflow"

    @keras.saving.register_keras_serializable(package="kaggle_digits")
    class FusedBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            # Keras 3.13 (Kaggle's image) has no `renorm`; any option the fused kernel cannot do goes to Keras' own
            # code.
            if (
                not fused
                or len(inputs.shape) != 4
                or self.axis not in (-1, 3)
                or getattr(self, "renorm", False)
                or getattr(self, "synchronized", False)
                or mask is not None
            ):
                return super().call(inputs, training=training, mask=mask)
            tf = lazy.tensorflow()
            ones = tf.ones_like(self.moving_mean)
            scale = self.gamma if self.scale else ones
            offset = self.beta if self.center else ones * 0
            if training and self.trainable:
                # The kernel folds the batch statistics into the moving averages itself.
                outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                    inputs,
                    scale,
                    offset,
                    mean=self.moving_mean,
                    variance=self.moving_variance,
                    epsilon=self.epsilon,
                    is_training=True,
                    exponential_avg_factor=1.0 - self.momentum,
                )
                self.moving_mean.assign(mean)
                self.moving_variance.assign(variance)
            else:
                outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                    inputs,
                    scale,
                    offset,
                    mean=self.moving_mean,
                    variance=self.moving_variance,
                    epsilon=self.epsilon,
                    is_training=False,
                )
            return tf.cast(outputs, self.compute_dtype)

    return FusedBatchNormalization


def backend() -> str:
    """The Keras backend that trains here: "tensorflow", "jax" or "torch"."""
    return str(lazy.keras().backend.backend())


@cache
def gpus() -> tuple[str, ...]:
    """The GPUs the Keras backend sees, by name (empty on a CPU)."""
    name = backend()
    if name == "tensorflow":
        tf = lazy.tensorflow()
        found = tf.config.list_physical_devices("GPU")
        return tuple(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in found)
    if name == "jax":
        import jax  # the backend Keras already imported

        return tuple(
            getattr(device, "device_kind", str(device)) for device in jax.devices() if device.platform == "gpu"
        )
    if name == "torch":
        import torch  # likewise

        return tuple(torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count()))
    return ()


def _compute_capability() -> float:
    """The first GPU's CUDA compute capability (7.5 for a T4, 9.0 for an H100/H200), 0 when unknown."""
    name = backend()
    try:
        if name == "tensorflow":
            tf = lazy.tensorflow()
            major, minor = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])[
                "compute_capability"
            ]
            return major + minor / 10
        if name == "jax":
            import jax

            return float(next(d for d in jax.devices() if d.platform == "gpu").compute_capability)
        if name == "torch":
            import torch

            major, minor = torch.cuda.get_device_capability(0)
            return major + minor / 10
    except (StopIteration, KeyError, IndexError, ValueError, TypeError, AttributeError, RuntimeError):
        pass
    return 0.0


def precision_policy() -> str:
    """Mixed precision on a GPU, per its kind: bfloat16 where the GPU computes it natively (compute capability 8 and
    up: A100, L4, H100/H200; no loss scaling needed), float16 with loss scaling before (Kaggle's T4, capability 7.5);
    float32 on the CPU. The same on every backend (Keras applies the policy and the loss scaling)."""
    if not gpus():
        return "float32"
    return "mixed_bfloat16" if _compute_capability() >= 8 else "mixed_float16"


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def setup_devices(seed: int) -> str:
    """Seed everything and pick the precision; returns a one-line device description.

    On a GPU, mixed precision roughly doubles throughput; on the CPU, float32 (with TensorFlow's op determinism)
    keeps a run repeatable for a given seed.
    """
    keras = lazy.keras()
    if backend() != "tensorflow" and _installed("tensorflow"):
        # Keras seeds TensorFlow too wherever it is installed, importing it: through its door, so it says nothing.
        lazy.tensorflow()
    keras.utils.set_random_seed(seed)
    policy = precision_policy()
    keras.mixed_precision.set_global_policy(policy)
    if gpus():
        return f"{len(gpus())} GPU(s) ({gpus()[0]}), {policy}, Keras on {backend()}"
    if backend() == "tensorflow":
        lazy.tensorflow().config.experimental.enable_op_determinism()
    return f"CPU ({os.cpu_count()} cores), float32, Keras on {backend()}"


def gpu_visible() -> bool:
    return bool(gpus())


def on_this_device(params, gpu: bool | None = None):
    """The presets' GPU settings when Keras sees a GPU (or `gpu` says so): gpu_epochs, gpu_members."""
    if not (gpu_visible() if gpu is None else gpu):
        return params
    presets = {"epochs": getattr(params, "gpu_epochs", 0), "members": getattr(params, "gpu_members", 0)}
    changes = {setting: value for setting, value in presets.items() if value}
    return replace(params, **changes) if changes else params


@cache
def batches_class():
    """Training batches from numpy on every backend (keras.utils.PyDataset): pixels scaled to [0, 1], one-hot labels.

    An epoch is `draws` rows (default: all), drawn afresh from a seeded generator after each epoch; with distorted
    copies the pool is larger than an epoch, so each epoch sees a fresh mix at no cost per step."""
    keras = lazy.keras()

    class Batches(keras.utils.PyDataset):
        def __init__(self, images, labels, batch_size: int, seed: int, shuffle: bool, draws: int | None = None):
            super().__init__()
            self.images, self.labels, self.batch_size, self.shuffle = images, labels, batch_size, shuffle
            self.draws = draws or len(images)
            self.generator = np.random.default_rng(seed)
            self.order = self._order()

        def _order(self) -> np.ndarray:
            if not self.shuffle:
                return np.arange(len(self.images))
            return self.generator.permutation(len(self.images))[: self.draws]

        def __len__(self) -> int:
            return math.ceil(self.draws / self.batch_size)

        def __getitem__(self, index: int):
            rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
            x = self.images[rows].reshape(-1, config.IMAGE_SIDE, config.IMAGE_SIDE, 1).astype(np.float32) / 255.0
            y = np.eye(config.NUM_CLASSES, dtype=np.float32)[self.labels[rows]]
            return x, y

        def on_epoch_end(self) -> None:
            self.order = self._order()

    return Batches


class KerasModel(Model):
    """Shared training loop: numpy batches, optional augmentation (a layer while training), early stopping."""

    extra_callbacks: tuple = ()  # Keras callbacks a caller adds to the next fit (training.validate_and_keep's)

    @classmethod
    def device(cls) -> str:
        return "GPU" if gpu_visible() else "CPU"

    @classmethod
    def keras_backend(cls) -> str:
        return backend()

    @property
    def augment(self) -> bool:
        params = self.params
        return any(getattr(params, name, 0) > 0 for name in ("rotation", "zoom", "shift", "elastic"))

    def network(self):
        raise NotImplementedError

    def keeps_its_compile(self, model) -> bool:
        """A network that arrives compiled (a user's) keeps its own optimizer and loss; the toolkit's are compiled."""
        return False

    def optimizer(self, steps_per_epoch: int):
        keras = lazy.keras()
        return keras.optimizers.Adam(self.params.learning_rate)

    def _batches(self, images, labels, training: bool):
        copies = getattr(self.params, "distorted_copies", 0) if training else 0
        draws = len(images)
        if copies:
            # The originals and their distorted copies in one pool; an epoch draws len(images) of them.
            params = self.params
            scale = params.elastic or 34.0  # Simard et al.'s alpha
            images = np.concatenate([images, elastic_copies(images, copies, scale, params.elastic_sigma, self.seed)])
            labels = np.tile(labels, copies + 1)
        return batches_class()(images, labels, self.params.batch_size, self.seed, shuffle=training, draws=draws)

    def _augmenter(self):
        params = self.params
        return augment_layer()(
            params.rotation,
            params.zoom,
            params.shift,
            self.seed,
            elastic=0.0 if getattr(params, "distorted_copies", 0) else getattr(params, "elastic", 0.0),
            elastic_sigma=getattr(params, "elastic_sigma", 4.0),
        )

    def fit(self, images, labels, validation=None, verbose=True) -> History:
        keras = lazy.keras()
        where = setup_devices(self.seed)
        if verbose:
            log.info("%s: training on %s", self.name, where)
        train = self._batches(images, labels, training=True)
        self.model = self.network()
        # The augmentation is a layer in front of the network while it trains (one seeded resampling per image, in
        # the training step: on a GPU it runs there too); what is kept, saved and predicts is the network alone.
        trainer = self.model
        if self.augment:
            shape = (config.IMAGE_SIDE, config.IMAGE_SIDE, 1)
            trainer = keras.Sequential([keras.Input(shape), self._augmenter(), self.model])
        if self.keeps_its_compile(self.model):
            optimizer, loss = self.model.optimizer, self.model.loss
        else:
            optimizer = self.optimizer(len(train))
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=getattr(self.params, "label_smoothing", 0.0))
        trainer.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=["accuracy"],
            # TensorFlow: no XLA (Keras declines it for the fused batch norm). JAX compiles the step (XLA, its way);
            # PyTorch runs eagerly unless asked ("auto" is Keras' own choice per backend).
            jit_compile=False if backend() == "tensorflow" else "auto",
        )
        # A caller's own per-epoch hooks (the tuner's pruning callback) run beside the toolkit's.
        callbacks = list(self.extra_callbacks)
        val = None
        if validation is not None:
            val_images, val_labels = validation
            val = self._batches(val_images, val_labels, training=False)
            if self.params.patience > 0:
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor="val_loss", patience=self.params.patience, restore_best_weights=True
                    )
                )
        # One line per epoch off a terminal (cron, CI logs); a live bar on one.
        progress = 0 if not verbose else (1 if os.isatty(1) else 2)
        self.trainer = trainer  # the network with its augmentation in front, compiled: what trained (its optimizer)
        result = trainer.fit(
            train, validation_data=val, epochs=self.params.epochs, callbacks=callbacks, verbose=progress
        )
        curves = {key: [float(value) for value in values] for key, values in result.history.items()}
        best_epoch = None
        if "val_loss" in curves:
            best_epoch = int(np.argmin(curves["val_loss"])) + 1
        return History(curves=curves, best_epoch=best_epoch)

    @property
    def fitted(self) -> bool:
        return getattr(self, "model", None) is not None

    def _predict_proba(self, images):
        x = images.reshape(-1, config.IMAGE_SIDE, config.IMAGE_SIDE, 1).astype(np.float32) / 255.0
        return np.asarray(self.model.predict(x, batch_size=1024, verbose=0), dtype=np.float32)

    def save(self, folder: Path) -> None:
        self.model.save(folder / "model.keras")

    def _load_weights(self, folder: Path) -> None:
        keras = lazy.keras()
        batch_norm_layer()  # registers the layer class the saved model names
        self.model = keras.models.load_model(folder / "model.keras")


class SoftmaxModel(KerasModel):
    """The tutorial's softmax regression, unchanged: Dense(10) on 784 scaled pixels, Adam 1e-4."""

    name = "softmax"

    @dataclass
    class Params:
        epochs: int = 50  # the tutorial's 50; it warns that more overfit
        batch_size: int = 100
        learning_rate: float = 1e-4
        patience: int = 0  # the tutorial trains all 50 epochs; set >0 to stop early

    @classmethod
    def search_space(cls, trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
            "epochs": trial.suggest_int("epochs", 10, 80, step=10),  # the tutorial warns that more overfit
        }

    def network(self):
        keras = lazy.keras()
        return keras.Sequential(
            [
                keras.Input((config.IMAGE_SIDE, config.IMAGE_SIDE, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(config.NUM_CLASSES, activation="softmax", dtype="float32"),
            ]
        )


class MLPModel(KerasModel):
    name = "mlp"

    @dataclass
    class Params:
        epochs: int = 30
        batch_size: int = 128
        learning_rate: float = 1e-3
        hidden_units: int = 256  # two hidden layers: this many, then half
        dropout: float = 0.3
        patience: int = 5  # epochs without a better validation loss before stopping

    @classmethod
    def search_space(cls, trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "hidden_units": trial.suggest_categorical("hidden_units", [128, 256, 512, 1024]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "epochs": trial.suggest_int("epochs", 10, 40, step=5),
        }

    def network(self):
        keras = lazy.keras()
        layers = keras.layers
        units = self.params.hidden_units
        return keras.Sequential(
            [
                keras.Input((config.IMAGE_SIDE, config.IMAGE_SIDE, 1)),
                layers.Flatten(),
                layers.Dense(units, activation="relu"),
                layers.Dropout(self.params.dropout),
                layers.Dense(units // 2, activation="relu"),
                layers.Dropout(self.params.dropout),
                layers.Dense(config.NUM_CLASSES, activation="softmax", dtype="float32"),
            ]
        )


@cache
def augment_layer():
    """The augmentation as a Keras layer, in `keras.ops` (every backend): one random rotation + zoom + shift per
    image, applied as a single affine resampling, in training only.

    Keras' RandomRotation, RandomZoom and RandomTranslation in a row resample each image three times
    (three bilinear blurs, three passes); composing the matrices first costs one pass and one blur.
    With `elastic` > 0, Simard et al.'s (2003) elastic distortion joins the same resampling: a random
    displacement field (uniform noise smoothed by a Gaussian of `elastic_sigma` pixels, scaled by
    `elastic`) is added to where each output pixel is read, so it costs no second blur either.
    """
    keras = lazy.keras()
    ops = keras.ops

    class Augment(keras.layers.Layer):
        def __init__(self, rotation, zoom, shift, seed, elastic=0.0, elastic_sigma=4.0, **kwargs):
            super().__init__(dtype="float32", **kwargs)  # float32 under mixed precision too: pixels, not features
            self.rotation, self.zoom, self.shift, self.elastic = rotation, zoom, shift, elastic
            self.generator = keras.random.SeedGenerator(seed)
            side = config.IMAGE_SIDE
            radius = int(3 * elastic_sigma)
            gauss = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(elastic_sigma, 1e-6)) ** 2)
            self.gauss = (gauss / gauss.sum()).astype(np.float32)
            self.grid_y, self.grid_x = (
                axis.astype(np.float32) for axis in np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
            )

        def _uniform(self, n, bound):
            return keras.random.uniform((n,), -bound, bound, seed=self.generator)

        def call(self, images, training=None):
            if not training:
                return images
            side = config.IMAGE_SIDE
            centre = (side - 1) / 2
            n = ops.shape(images)[0]
            angle = self._uniform(n, float(np.deg2rad(self.rotation)))
            inverse_scale = 1.0 / (1.0 + self._uniform(n, self.zoom))
            dx, dy = self._uniform(n, self.shift * side), self._uniform(n, self.shift * side)
            # The transform maps each output pixel back to where it is read in the input:
            # p = R(-angle) / scale * (q - centre - shift) + centre.
            a0, a1 = inverse_scale * ops.cos(angle), inverse_scale * ops.sin(angle)
            b0, b1 = -a1, a0
            a2 = centre - a0 * (centre + dx) - a1 * (centre + dy)
            b2 = centre - b0 * (centre + dx) - b1 * (centre + dy)
            if self.elastic <= 0:
                zeros = ops.zeros_like(a0)
                matrices = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
                return ops.image.affine_transform(images, matrices, interpolation="bilinear", fill_mode="constant")
            # Where each output pixel reads: the affine map plus a smooth random displacement (2 fields: x, y).
            noise = keras.random.uniform((n * 2, side, side, 1), -1.0, 1.0, seed=self.generator)
            rows, columns = self.gauss.reshape(-1, 1, 1, 1), self.gauss.reshape(1, -1, 1, 1)
            smooth = ops.conv(ops.conv(noise, rows, padding="same"), columns, padding="same")
            field = ops.reshape(smooth * self.elastic, (n, 2, side, side))

            def at(values):
                return values[:, None, None]

            read_x = at(a0) * self.grid_x + at(a1) * self.grid_y + at(a2) + field[:, 0]
            read_y = at(b0) * self.grid_x + at(b1) * self.grid_y + at(b2) + field[:, 1]
            index = ops.broadcast_to(ops.cast(ops.reshape(ops.arange(n), (-1, 1, 1)), "float32"), ops.shape(read_x))
            coordinates = ops.stack([index, read_y, read_x])
            moved = ops.image.map_coordinates(images[..., 0], coordinates, order=1, fill_mode="constant")
            return moved[..., None]

    return Augment


def elastic_copies(
    images: np.ndarray, copies: int, alpha: float, sigma: float, seed: int, chunk: int = 4096
) -> np.ndarray:
    """`copies` elastically distorted versions of each image (Simard et al. 2003), made once with scipy, as uint8.

    A displacement field per image (uniform noise in [-1, 1], smoothed by a Gaussian of `sigma` pixels, times
    `alpha`) moves where each pixel is read; one bilinear resampling of the whole stack at a time (the image index
    is the first coordinate), in chunks to bound memory. Copy c of image i is the c-th block's row i.
    """
    ndimage = lazy.scipy_ndimage()
    rng = np.random.default_rng(seed + 7919)  # its own stream: the training's seed draws the rest
    side = config.IMAGE_SIDE
    stack = images.reshape(-1, side, side).astype(np.float32)
    rows, columns = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    out = np.empty((copies, len(stack), side * side), dtype=np.uint8)
    for copy in range(copies):
        for start in range(0, len(stack), chunk):
            block = stack[start : start + chunk]
            n = len(block)
            field = ndimage.gaussian_filter(
                rng.uniform(-1, 1, (2, n, side, side)), sigma=(0, 0, sigma, sigma), mode="constant"
            )
            where = np.stack(
                [
                    np.broadcast_to(np.arange(n)[:, None, None], (n, side, side)),
                    rows[None] + alpha * field[0],
                    columns[None] + alpha * field[1],
                ]
            )
            moved = ndimage.map_coordinates(block, where, order=1, mode="constant", cval=0.0)
            out[copy, start : start + n] = np.clip(np.rint(moved), 0, 255).reshape(n, -1)
    return out.reshape(copies * len(stack), side * side)


@dataclass
class CNNParams:
    # The architecture of Chris Deotte's "25 Million Images" kernel (the `deotte` peer model) on a short
    # budget: one warm-up epoch, then cosine to zero, label smoothing, batch norm momentum 0.9, and one
    # combined affine resampling for the augmentation. Ranked by `make bench` (out-of-fold, see README).
    epochs: int = 13  # 15 measured no better out-of-fold (0.9949 vs 0.9948, paired): the time goes to nothing
    # When TensorFlow sees a GPU (here or in a Kaggle kernel): the published long schedule's length, mixed precision
    # (setup_devices). 0: `epochs` everywhere; a user who sets epochs alone gets exactly that (models.params_for).
    gpu_epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 3e-3  # peak of the warm-up + cosine schedule
    warmup_epochs: int = 1
    filters: int = 32  # first stage's width; the second stage doubles it, the last conv is 4x
    dropout: float = 0.4
    label_smoothing: float = 0.1  # softer targets: better calibrated, a little more accurate
    # Adam's use_ema (predict with a moving average of the weights): off, as benchmarked. It costs no
    # speed (867 vs 853 images/s); what it buys at this budget is not yet measured out-of-fold.
    ema: bool = False
    ema_momentum: float = 0.99
    rotation: float = 10.0  # augmentation: degrees either way
    zoom: float = 0.10  # augmentation: +-10% scale
    shift: float = 0.10  # augmentation: +-10% of the side, each way
    # Elastic distortion (Simard et al. 2003) in the same resampling: scale of the smoothed random
    # displacement field (0: off; Simard used 34 with sigma 4) and its Gaussian's sigma in pixels.
    # Off: its gather-based sampler made epochs about 1.6x slower here, and what it buys is unmeasured (README).
    elastic: float = 0.0
    elastic_sigma: float = 4.0
    # Elastic distortion made once, outside the graph (issue 23): this many distorted copies of the training
    # images (scale `elastic`, default 34 when 0), drawn from with the originals; the affine part stays online.
    # 0: off. Costs seconds before training instead of 1.6x per epoch; what it buys is measured with `make bench`.
    distorted_copies: int = 0
    # 0: no early stopping. Under a cosine schedule the last epoch is the best one, and weight
    # averaging is applied at the end of training, after early stopping would have restored weights.
    patience: int = 0


def conv_stages(layers, width: int, dropout: float, momentum: float) -> list:
    """Deotte's stack: 3x3, 3x3, then a strided 5x5 in place of pooling, twice; then a 4x4 to 1x1."""
    batch_norm = batch_norm_layer()

    def conv(filters, size, stride=1, padding="valid"):
        return [
            layers.Conv2D(filters, size, strides=stride, padding=padding, activation="relu"),
            batch_norm(momentum=momentum),
        ]

    stack = []
    for stage in range(2):
        filters = width * 2**stage
        stack += conv(filters, 3) + conv(filters, 3) + conv(filters, 5, 2, "same") + [layers.Dropout(dropout)]
    return stack + conv(width * 4, 4) + [layers.Flatten(), layers.Dropout(dropout)]


def warmup_cosine(params, steps_per_epoch: int, floor: float):
    """Learning rate from a tenth of the peak up to it over the warm-up epochs, then cosine down to floor x peak."""
    keras = lazy.keras()
    warmup_steps = params.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=params.learning_rate / 10,
        decay_steps=max(1, params.epochs * steps_per_epoch - warmup_steps),
        warmup_target=params.learning_rate,
        warmup_steps=warmup_steps,
        alpha=floor,
    )


def deotte_network(filters: int, dropout: float, bn_momentum: float):
    """Deotte's single CNN (the `cnn` preset and the `deotte` peer share it)."""
    keras = lazy.keras()
    return keras.Sequential(
        [
            keras.Input((config.IMAGE_SIDE, config.IMAGE_SIDE, 1)),
            *conv_stages(keras.layers, filters, dropout, bn_momentum),
            keras.layers.Dense(config.NUM_CLASSES, activation="softmax", dtype="float32"),
        ]
    )


class CNNModel(KerasModel):
    """Deotte's CNN architecture with a short-budget schedule: warm-up + cosine, weight averaging."""

    name = "cnn"
    Params = CNNParams

    @classmethod
    def as_trained(cls, params, gpu: bool | None = None):
        return on_this_device(params, gpu)

    def fit(self, images, labels, validation=None, verbose=True) -> History:
        self.params = on_this_device(self.params)  # recorded as trained: the saved config names the epochs it ran
        return super().fit(images, labels, validation, verbose)

    @classmethod
    def search_space(cls, trial):
        # One augmentation strength scales the three together (1: the defaults, 0: none): one dimension, not three
        # that mostly move as one.
        strength = trial.suggest_float("augmentation", 0.0, 1.5)
        return {
            "learning_rate": trial.suggest_float("learning_rate", 5e-4, 1e-2, log=True),
            "dropout": trial.suggest_float("dropout", 0.1, 0.6),
            "filters": trial.suggest_categorical("filters", [16, 24, 32, 48]),
            "epochs": trial.suggest_int("epochs", 5, 20),
            "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
            "rotation": round(10.0 * strength, 4),
            "zoom": round(0.1 * strength, 4),
            "shift": round(0.1 * strength, 4),
        }

    def optimizer(self, steps_per_epoch: int):
        keras = lazy.keras()
        params = self.params
        schedule = warmup_cosine(params, steps_per_epoch, floor=0.0)
        # The average spans at most the last tenth of training: on a short run (a smoke test, a few
        # epochs on the sample) a 0.99 average would still be half made of the untrained weights.
        total_steps = params.epochs * steps_per_epoch
        momentum = min(params.ema_momentum, 1 - 10 / max(total_steps, 20))
        return keras.optimizers.Adam(schedule, use_ema=params.ema, ema_momentum=momentum)

    def network(self):
        # Batch norm momentum 0.9, not Keras' 0.99: with a few thousand steps per run the slower
        # moving averages lag behind the weights (measured: inference accuracy collapsed, 0.12 vs 0.97).
        return deotte_network(self.params.filters, self.params.dropout, bn_momentum=0.9)


@dataclass
class DeotteParams:
    # As published in Chris Deotte's Kaggle kernel "25 Million Images! [0.99757] MNIST" (each of its
    # 15 CNNs): 45 epochs, batch 64, Adam 1e-3 decayed x0.95 per epoch, rotation 10, zoom 0.1, shifts 0.1.
    epochs: int = 45
    batch_size: int = 64
    learning_rate: float = 1e-3
    decay: float = 0.95  # learning rate x decay**epoch
    filters: int = 32
    dropout: float = 0.4
    rotation: float = 10.0
    zoom: float = 0.10
    shift: float = 0.10
    bn_momentum: float = 0.99  # Keras' default, as in the kernel (a run of a few hundred steps needs 0.9)
    patience: int = 0  # the kernel trains every epoch


class DeotteModel(KerasModel):
    """The peer model: Deotte's single CNN and training recipe as published, for side-by-side benchmarks."""

    name = "deotte"
    Params = DeotteParams

    def optimizer(self, steps_per_epoch: int):
        keras = lazy.keras()
        # The kernel's LearningRateScheduler(lambda epoch: 1e-3 * 0.95 ** epoch), as a per-step schedule.
        schedule = keras.optimizers.schedules.ExponentialDecay(
            self.params.learning_rate, decay_steps=steps_per_epoch, decay_rate=self.params.decay, staircase=True
        )
        return keras.optimizers.Adam(schedule)

    def network(self):
        return deotte_network(self.params.filters, self.params.dropout, self.params.bn_momentum)

    @classmethod
    def search_space(cls, trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
            "decay": trial.suggest_float("decay", 0.85, 0.99),
            "dropout": trial.suggest_float("dropout", 0.1, 0.6),
            "epochs": trial.suggest_int("epochs", 10, 45, step=5),
        }


@dataclass
class FastParams:
    # Measured on the 37,800-row holdout split: 5 epochs without augmentation reached 0.991 in 55 s;
    # with augmentation 0.989 (it pays off only over longer runs); width 24 doubled the time.
    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 4e-3
    warmup_epochs: int = 1
    filters: int = 16
    dense_units: int = 64
    dropout: float = 0.15
    label_smoothing: float = 0.1
    rotation: float = 0.0
    zoom: float = 0.0
    shift: float = 0.0
    patience: int = 0


class FastCNNModel(KerasModel):
    """The `fast` preset: two small conv blocks with max pooling, five epochs, no augmentation."""

    name = "fast"
    Params = FastParams

    def optimizer(self, steps_per_epoch: int):
        return lazy.keras().optimizers.Adam(warmup_cosine(self.params, steps_per_epoch, floor=0.01))

    @classmethod
    def search_space(cls, trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1.5e-2, log=True),
            "filters": trial.suggest_categorical("filters", [8, 16, 24, 32]),
            "dense_units": trial.suggest_categorical("dense_units", [32, 64, 128]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.4),
            "epochs": trial.suggest_int("epochs", 3, 10),
        }

    def network(self):
        keras = lazy.keras()
        layers = keras.layers
        width = self.params.filters
        batch_norm = batch_norm_layer()

        def conv(filters):
            return [layers.Conv2D(filters, 3, padding="same", use_bias=False), batch_norm(momentum=0.9), layers.ReLU()]

        body = []
        for block in range(2):  # 28x28, then 14x14; the second block doubles the width
            body += (
                conv(width * 2**block)
                + conv(width * 2**block)
                + [layers.MaxPooling2D(), layers.Dropout(self.params.dropout)]
            )
        return keras.Sequential(
            [
                keras.Input((config.IMAGE_SIDE, config.IMAGE_SIDE, 1)),
                *body,
                layers.Flatten(),
                layers.Dense(self.params.dense_units, use_bias=False),
                layers.BatchNormalization(momentum=0.9),
                layers.ReLU(),
                layers.Dropout(self.params.dropout),
                layers.Dense(config.NUM_CLASSES, activation="softmax", dtype="float32"),
            ]
        )


@dataclass
class EnsembleParams(CNNParams):
    members: int = 5  # CNNs, one per fold: each trains on the other folds (80% of the rows with 5)
    # On a GPU: Deotte's committee size, each member on 14/15 of the rows, so the estimate stays out-of-fold.
    # 0: `members` everywhere; a user who sets members alone gets exactly that.
    gpu_members: int = 15
    # Members trained at once, each in a process of its own with its share of the cores. 0: one per
    # 4 cores (small convolutions scale poorly past a few threads), so 1 (in turn) on a 2-core machine.
    workers: int = 0


def _train_member(
    params: CNNParams, seed: int, images, labels, held_out_images, folder: str, threads: int, gpu: int | None = None
):
    """In a worker process: train one member with `threads` cores (or on GPU `gpu`), save it, return its held-out
    predictions."""
    limit_worker(threads, gpu)
    member = CNNModel(params, seed)
    history = member.fit(images, labels, None, verbose=False)
    Path(folder).mkdir(parents=True)
    member.save(Path(folder))
    return member.predict(held_out_images), history.curves


def limit_worker(threads: int, gpu: int | None) -> None:
    """Before the backend's runtime starts in a worker process: its share of the cores, or one GPU of its own
    (several workers may share one GPU: memory is taken as needed, not all at once)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX would take 75% of the GPU's memory up front
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    name = lazy.keras_backend()
    if name == "tensorflow":
        tf = lazy.tensorflow()
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        for device in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(device, True)
    elif name == "torch":
        import torch  # Keras' backend in this process: its thread count before any work

        torch.set_num_threads(threads)
    elif name == "jax":
        os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}")


class EnsembleModel(Model):
    """The `ensemble` preset: one `cnn` per fold, each trained on the other folds; probabilities averaged.

    Every row is held out from exactly one member, so fitting on all of train.csv also yields the
    members' out-of-fold accuracy over every row: the submission's estimate costs no extra training.
    (It is the accuracy of single members; the committee of all of them is typically a little better.)
    """

    name = "ensemble"
    Params = EnsembleParams
    estimates_itself = True

    @classmethod
    def device(cls) -> str:
        return "GPU" if gpu_visible() else "CPU"

    @classmethod
    def keras_backend(cls) -> str:
        return backend()

    @classmethod
    def as_trained(cls, params, gpu: bool | None = None):
        return on_this_device(params, gpu)

    @classmethod
    def search_space(cls, trial):
        return CNNModel.search_space(trial)  # its members' settings; their number stays as given (-p members=N)

    def _member_params(self) -> CNNParams:
        fields = {
            key: value for key, value in vars(self.params).items() if key not in ("members", "workers", "gpu_members")
        }
        return CNNParams(**fields)

    def member_seed(self, index: int) -> int:
        return self.seed + 1000 * index

    def member(self, index: int) -> CNNModel:
        """The untrained member that holds out fold `index` (also what a Kaggle kernel trains for --remote)."""
        return CNNModel(self._member_params(), self.member_seed(index))

    def _workers(self) -> int:
        if self.params.workers:
            return min(self.params.workers, self.params.members)
        if gpus():
            # One member per GPU, each a process of its own: for models this small that beats replicating one model
            # over the GPUs (docs/benchmarks.md: Several GPUs). One GPU: the members in turn, in this process.
            return min(len(gpus()), self.params.members)
        return max(1, min(self.params.members, (os.cpu_count() or 1) // 4))

    def fit(self, images, labels, validation=None, verbose=True) -> History:
        self.params = on_this_device(self.params)
        if self.params.members < 2:
            raise UsageError(
                f"ensemble: members={self.params.members}: needs at least 2 (one per fold). Fix: -p members=5"
            )
        splits = kfold_splits(labels, self.params.members, self.seed)
        out_of_fold = np.zeros(len(labels), dtype=np.int64)
        workers = self._workers()
        if workers > 1:
            curves = self._fit_in_processes(images, labels, splits, out_of_fold, workers, verbose)
        else:
            curves = self._fit_in_turn(images, labels, splits, out_of_fold, validation, verbose)
        best_epoch = int(np.argmin(curves["val_loss"])) + 1 if curves.get("val_loss") else None  # the first member's
        return History(
            curves=curves,
            best_epoch=best_epoch,
            out_of_fold_accuracy=float(np.mean(out_of_fold == labels)),
            out_of_fold_rows=int(len(labels)),
        )

    def _fit_in_turn(self, images, labels, splits, out_of_fold, validation, verbose) -> dict:
        self.members = []
        first = None
        for index, (train, held_out) in enumerate(splits):
            if verbose:
                print(f"ensemble member {index + 1}/{len(splits)} (fold {index + 1} held out)", flush=True)
            member = self.member(index)
            # The first member draws the learning curves (on the caller's validation rows if any, else on
            # its own held-out fold); the others skip the per-epoch evaluation, which costs time.
            watch = validation if validation is not None else (images[held_out], labels[held_out])
            history = member.fit(images[train], labels[train], watch if index == 0 else None, verbose)
            first = first or history
            out_of_fold[held_out] = member.predict(images[held_out])
            self.members.append(member)
        assert first is not None, "at least two members"
        return first.curves

    def _fit_in_processes(self, images, labels, splits, out_of_fold, workers: int, verbose: bool) -> dict:
        threads = max(1, (os.cpu_count() or 1) // workers)
        devices = len(gpus())
        if verbose:
            where = f"on {devices} GPU(s)" if devices else f"{threads} cores each"
            print(f"ensemble: {len(splits)} members, {workers} at a time ({where})", flush=True)
        with (
            tempfile.TemporaryDirectory(prefix="ensemble-") as scratch,
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
        ):
            jobs = [
                pool.submit(
                    _train_member,
                    self._member_params(),
                    self.member_seed(index),
                    images[train],
                    labels[train],
                    images[held_out],
                    str(Path(scratch) / f"member-{index}"),
                    threads,
                    index % devices if devices else None,
                )
                for index, (train, held_out) in enumerate(splits)
            ]
            curves: dict = {}
            for index, (job, (_, held_out)) in enumerate(zip(jobs, splits, strict=True)):
                predicted, member_curves = job.result()
                out_of_fold[held_out] = predicted
                curves = curves or member_curves
                if verbose:
                    print(
                        f"ensemble member {index + 1}/{len(splits)} done: {np.mean(predicted == labels[held_out]):.4f} "
                        f"on its held-out fold",
                        flush=True,
                    )
            self.members = [
                CNNModel.load(Path(scratch) / f"member-{index}", self._member_params(), self.member_seed(index))
                for index in range(len(splits))
            ]
        return curves

    @property
    def fitted(self) -> bool:
        return bool(getattr(self, "members", None))

    def _predict_proba(self, images):
        return np.mean([member.predict_proba(images) for member in self.members], axis=0)

    def save(self, folder: Path) -> None:
        for index, member in enumerate(self.members):
            member_folder = folder / f"member-{index}"
            member_folder.mkdir(parents=True, exist_ok=True)
            member.save(member_folder)

    def _load_weights(self, folder: Path) -> None:
        # Each member with its own seed, as it was trained (member-<index>; sorted by number, so member-10 follows
        # member-9).
        folders = sorted(folder.glob("member-*"), key=lambda path: int(path.name.split("-", 1)[1]))
        self.members = [
            CNNModel.load(path, self._member_params(), self.member_seed(int(path.name.split("-", 1)[1])))
            for path in folders
        ]
