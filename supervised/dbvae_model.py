"""The debiasing VAE of Amini et al. (AIES 2019) in TensorFlow: its networks and losses, no data.

The course's CNN classifier; the DB-VAE = that CNN with 2 * latent_dim + 1 outputs (class logit,
latent mean, latent log-variance) and a transposed-CNN decoder. The losses are pure functions of
their tensors, tested against values worked out by hand; the resampling probabilities, pure
NumPy, are in ``supervised/dbvae_base.py``. ``supervised/dbvae.py`` trains them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from supervised.dbvae_base import check_image_shape

# ---------------------------------------------------------------------------------------- models


def _initializers(seed: int):
    """Glorot initialisers seeded seed, seed + 1, ...: the weights are a function of the seed."""
    return iter(keras.initializers.GlorotUniform(seed=seed + i) for i in range(100))


def build_classifier(n_outputs: int = 1, n_filters: int = 12,
                     image_shape: tuple[int, int, int] = (64, 64, 3), seed: int = 0,
                     name: str = "classifier") -> keras.Model:
    """The course's standard CNN, images [B, H, W, 3] in [0, 1] -> [B, n_outputs]:
    Conv(n, 5, stride 2) -> BN -> Conv(2n, 5, s2) -> BN -> Conv(4n, 3, s2) -> BN -> Conv(6n, 3, s2)
    -> BN -> Flatten -> Dense 512 relu -> Dense n_outputs; convolutions relu, 'same' padding, so
    H and W shrink 16 times (they must be multiples of 16)."""
    init = _initializers(seed)
    conv = dict(padding="same", activation="relu")
    n = n_filters
    return keras.Sequential([
        keras.Input(shape=image_shape),
        keras.layers.Conv2D(1 * n, 5, strides=2, kernel_initializer=next(init), **conv),  # H/2
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(2 * n, 5, strides=2, kernel_initializer=next(init), **conv),  # H/4
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(4 * n, 3, strides=2, kernel_initializer=next(init), **conv),  # H/8
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(6 * n, 3, strides=2, kernel_initializer=next(init), **conv),  # H/16
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(512, activation="relu", kernel_initializer=next(init)),
        keras.layers.Dense(n_outputs, kernel_initializer=next(init)),
    ], name=name)


def build_decoder(latent_dim: int, n_filters: int = 12, image_shape: tuple[int, int, int] = (64, 64, 3),
                  seed: int = 0) -> keras.Model:
    """The course's decoder, codes [B, latent_dim] -> images [B, H, W, 3]: Dense((H/16)(W/16)6n)
    -> Reshape -> ConvT(4n, 3, s2) -> ConvT(2n, 3, s2) -> ConvT(n, 5, s2) -> ConvT(3, 5, s2); all
    relu (the last too, as the course's), 'same' padding."""
    init = _initializers(seed)
    h, w = image_shape[0] // 16, image_shape[1] // 16
    n = n_filters
    deconv = dict(padding="same", activation="relu")
    return keras.Sequential([
        keras.Input(shape=(latent_dim,)),
        keras.layers.Dense(h * w * 6 * n, activation="relu", kernel_initializer=next(init)),
        keras.layers.Reshape((h, w, 6 * n)),
        keras.layers.Conv2DTranspose(4 * n, 3, strides=2, kernel_initializer=next(init), **deconv),
        keras.layers.Conv2DTranspose(2 * n, 3, strides=2, kernel_initializer=next(init), **deconv),
        keras.layers.Conv2DTranspose(1 * n, 5, strides=2, kernel_initializer=next(init), **deconv),
        keras.layers.Conv2DTranspose(3, 5, strides=2, kernel_initializer=next(init), **deconv),
    ], name="decoder")


def reparameterize(mu: tf.Tensor, logvar: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
    """A sample of N(mu, exp(logvar)) from standard normal noise eps: mu + exp(logvar / 2) eps."""
    return mu + tf.exp(0.5 * logvar) * eps


class DbVae(keras.Model):
    """Encoder: the classifier with 2 * latent_dim + 1 outputs, read as (class logit, latent mean,
    latent log-variance); decoder: ``build_decoder``. The noise of the sampled code comes from the
    caller (``reparameterize``), so a step is a function of its inputs."""

    def __init__(self, latent_dim: int = 100, n_filters: int = 12,
                 image_shape: tuple[int, int, int] = (64, 64, 3), seed: int = 0):
        check_image_shape(image_shape)
        super().__init__(name="dbvae")
        self.latent_dim = latent_dim
        self.encoder = build_classifier(2 * latent_dim + 1, n_filters, image_shape, seed, name="encoder")
        self.decoder = build_decoder(latent_dim, n_filters, image_shape, seed + 50)

    def encode(self, x: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(class logits [B], means [B, L], log-variances [B, L]) of images x [B, H, W, 3]."""
        out = self.encoder(x, training=training)                                  # [B, 2L + 1]
        return out[:, 0], out[:, 1:self.latent_dim + 1], out[:, self.latent_dim + 1:]

    def decode(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.decoder(z, training=training)                                 # [B, H, W, 3]

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False):
        """(x, eps) -> (class logits [B], means, log-variances, reconstructions [B, H, W, 3])."""
        x, eps = inputs
        y_logit, mu, logvar = self.encode(x, training)
        return y_logit, mu, logvar, self.decode(reparameterize(mu, logvar, eps), training)


def face_logits(model: keras.Model, x: tf.Tensor, training: bool = False) -> tf.Tensor:
    """The face logit [B] of either model: the classifier's one output, the DB-VAE's first."""
    if isinstance(model, DbVae):
        return model.encode(x, training)[0]
    return model(x, training=training)[:, 0]


# ---------------------------------------------------------------------------------------- losses


def kl_divergence(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per example [B]: 0.5 sum(exp(logvar) + mu^2 - 1 - logvar)."""
    return 0.5 * tf.reduce_sum(tf.exp(logvar) + tf.square(mu) - 1.0 - logvar, axis=-1)


def reconstruction_loss(x: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    """The course's L1 loss per example [B]: the mean of |x - x_hat| over pixels and channels."""
    return tf.reduce_mean(tf.abs(x - x_hat), axis=[1, 2, 3])


def vae_loss(x: tf.Tensor, x_hat: tf.Tensor, mu: tf.Tensor, logvar: tf.Tensor,
             kl_weight: float) -> tf.Tensor:
    """kl_weight * KL + reconstruction, per example [B]."""
    return kl_weight * kl_divergence(mu, logvar) + reconstruction_loss(x, x_hat)


def dbvae_loss(x: tf.Tensor, x_hat: tf.Tensor, y: tf.Tensor, y_logit: tf.Tensor, mu: tf.Tensor,
               logvar: tf.Tensor, kl_weight: float) -> tuple[tf.Tensor, tf.Tensor]:
    """(total [B], classification [B]): cross-entropy of the face label y (1 face, 0 not) and its
    logit, plus the VAE loss of faces only (the VAE models faces; non-faces add nothing)."""
    y_logit = tf.convert_to_tensor(y_logit)
    y = tf.cast(y, y_logit.dtype)                                                  # [B]
    classification = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=y_logit)
    is_face = tf.cast(tf.equal(y, 1.0), y_logit.dtype)
    return classification + is_face * vae_loss(x, x_hat, mu, logvar, kl_weight), classification
