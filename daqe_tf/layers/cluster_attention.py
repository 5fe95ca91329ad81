"""Cluster attention: global texture modelling across the patches of one defocus cluster (DAQE).

Patches of similar defocus share texture statistics, so a patch may borrow context from the
other patches of its cluster. Queries are cells, keys and values one summary per reference
region, and attention never crosses clusters: the cost follows the tokens of the call (one
cluster's batch of patches), not the area of one patch.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

from daqe_tf.layers.padding import crop_to, pad_to_multiple

_MASKED = -1e9  # logits are float32 here, also under mixed precision


@keras.saving.register_keras_serializable(package="daqe_tf")
class ClusterAttention(layers.Layer):
    """``call(features, clusters=None)`` -> features modulated by context from same-cluster references.

    Each ``query_pool`` x ``query_pool`` cell of every batch item is a query; each
    ``reference_pool`` x ``reference_pool`` region of every batch item (a patch, when the batch
    holds patches) is one key/value. A query attends to the references of all batch items of
    its own cluster; the attended context gives each cell a per-channel scale and shift,
    interpolated linearly to pixels: out = x * (1 + scale) + shift.

    Args:
        channels: feature channels (kept).
        key_dim: width of queries and keys (one head).
        query_pool: feature pixels per query cell side.
        reference_pool: feature pixels per reference region side, a multiple of ``query_pool``.

    ``clusters``: (B,) integer cluster id of each batch item; None = the batch is one cluster.
    Any H, W of at least ``reference_pool / 2``: features are padded inside (bottom/right).
    """

    def __init__(self, channels: int, key_dim: int = 16, query_pool: int = 1, reference_pool: int = 4, **kwargs):
        super().__init__(**kwargs)
        if query_pool < 1 or reference_pool % query_pool:
            raise ValueError("reference_pool must be a positive multiple of query_pool")
        self.channels = channels
        self.key_dim = key_dim
        self.query_pool = query_pool
        self.reference_pool = reference_pool
        self.query = layers.Dense(key_dim, name="query")
        self.key = layers.Dense(key_dim, name="key")
        self.value = layers.Dense(channels, name="value")
        self.modulation = layers.Dense(2 * channels, name="modulation")

    def build(self, input_shape):
        token_shape = (None, self.channels)
        for dense in (self.query, self.key, self.value, self.modulation):
            dense.build(token_shape)
        super().build(input_shape)

    @staticmethod
    def _pool(x, size):
        return x if size == 1 else ops.average_pool(x, size, strides=size, padding="valid")

    @staticmethod
    def _upsample(x, size):
        """Nearest upsampling then a ``size`` box filter: linear interpolation between cell centres.

        (No seams at cell borders; ``ops.image.resize`` rejects the dynamic sizes of a traced call.)
        """
        if size == 1:
            return x
        x = ops.repeat(ops.repeat(x, size, axis=1), size, axis=2)
        return ops.average_pool(x, size, strides=1, padding="same")

    @staticmethod
    def _token_clusters(clusters, batch, tokens_per_item):
        """(B,) ids -> (B * tokens_per_item,) ids, item-major like the flattened tokens."""
        ids = ops.broadcast_to(ops.expand_dims(clusters, 1), (batch, tokens_per_item))
        return ops.reshape(ids, (-1,))

    def call(self, inputs, clusters=None):
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
        x = pad_to_multiple(inputs, self.reference_pool)
        cells = self._pool(x, self.query_pool)
        references = ops.reshape(self._pool(x, self.reference_pool), (-1, self.channels))
        batch, cell_rows, cell_cols = ops.shape(cells)[0], ops.shape(cells)[1], ops.shape(cells)[2]

        queries = self.query(ops.reshape(cells, (-1, self.channels)))
        logits = ops.matmul(queries, ops.transpose(self.key(references))) / math.sqrt(self.key_dim)
        logits = ops.cast(logits, "float32")
        if clusters is not None:
            query_ids = self._token_clusters(clusters, batch, cell_rows * cell_cols)
            reference_ids = self._token_clusters(clusters, batch, ops.shape(references)[0] // batch)
            same = ops.equal(ops.expand_dims(query_ids, 1), ops.expand_dims(reference_ids, 0))
            logits = ops.where(same, logits, _MASKED)
        weights = ops.cast(ops.softmax(logits, axis=-1), self.compute_dtype)
        context = ops.matmul(weights, self.value(references))

        film = ops.reshape(self.modulation(context), (batch, cell_rows, cell_cols, 2 * self.channels))
        film = crop_to(self._upsample(film, self.query_pool), height, width)
        scale, shift = ops.split(film, 2, axis=-1)
        return inputs * (1.0 + scale) + shift

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "key_dim": self.key_dim,
            "query_pool": self.query_pool,
            "reference_pool": self.reference_pool,
        }
