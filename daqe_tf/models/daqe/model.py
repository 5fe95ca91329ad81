"""DAQENet: defocus-aware dynamic enhancement (after DAQE, TPAMI 2023).

Defocused regions lost little detail to JPEG, so they need little compute. N progressive
branches run from coarse to fine; branch m is the exit of defocus cluster m, so a blurred
patch stops after the cheap coarse branch and a sharp one runs them all. Per-cluster texture
modules sit between each branch and its exit head, off the context path, so the all-exit
training call shares every branch and each cluster's parameters shape only its own exit.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from daqe_tf.layers.blocks import BLOCKS, make_block
from daqe_tf.layers.cluster_attention import ClusterAttention
from daqe_tf.layers.padding import crop_to, pad_to_multiple
from daqe_tf.models.daqe.branches import DAQEBranch
from daqe_tf.models.daqe.cascade_readout import CascadeReadout, patch_summary, qmap_summary
from daqe_tf.models.daqe.clusters import assign_clusters_tensor, patch_defocus_from_map_tensor, validate_thresholds
from daqe_tf.models.daqe.defocus_head import DefocusHead
from daqe_tf.models.daqe.routing_readout import RoutingReadout

TEXTURES = ("cnn", "transformer")
ROUTINGS = ("defocus", "readout", "cascade")
MAX_SIGMA = 8.0  # px, the classical estimator's default cap


def default_thresholds(num_clusters: int) -> list[float]:
    """Evenly spaced log1p(sigma) over [0, log1p(MAX_SIGMA)]: placeholders until ``fit_thresholds``."""
    return [float(t) for t in np.linspace(0.0, np.log1p(MAX_SIGMA), num_clusters + 1)[1:-1]]


@keras.saving.register_keras_serializable(package="daqe_tf")
class DAQENet(keras.Model):
    """Defocus-clustered early-exit enhancer: branch m = exit m = cluster m (0 = most defocused).

    Args:
        image_channels: 1 (grayscale) or 3 (RGB).
        num_clusters: N, the number of clusters, branches and exits.
        widths: N + 1 channel counts by level; level l runs at 1/(stem_stride * 2**l). Branch m
            works at level N-1-m (so branch 0 is the coarsest) with its bottleneck at level N-m.
        encoder_blocks, bottleneck_blocks, decoder_blocks: blocks per branch (N each).
        block: the branches' block (``daqe_tf.layers.blocks.BLOCKS``: "residual", "naf",
            "inverted"); the "cnn" texture modules are one block of this kind each.
        texture: per-cluster texture module before each exit head. "cnn": one block per
            cluster. "transformer": ``ClusterAttention`` per cluster over the batch's
            patches (queries per defocus cell, one key/value per patch).
        stem_stride: 1 or 2; the finest branch runs at 1/stem_stride.
        key_dim: query/key width of the "transformer" texture.
        patch_size: side of the patches that are clustered (a multiple of ``stride`` and of
            the defocus cell size).
        thresholds: N - 1 ascending log1p(sigma) patch-defocus thresholds (``fit_thresholds``).
        defocus_widths, defocus_blocks: ``DefocusHead`` levels.
        routing: the per-cell signal patches are clustered by. "defocus": the predicted defocus
            (thresholds in log1p sigma). "readout": a ``RoutingReadout`` of the head's features,
            fitted after training by ``train.fit_thresholds --signal readout`` (thresholds in its
            units). Either way higher means a cheaper exit. "cascade": no one-shot signal; after
            branch m a ``CascadeReadout`` of the branches' pooled features decides whether the
            patch leaves through exit m (``cascade_stage``; fitted by ``--signal cascade``, the
            thresholds folded into its biases, so ``thresholds`` stay placeholders).
        max_cost, exit_costs: a cascade's compute cap: within a band of patches (the whole image up
            to ``routing.CASCADE_BAND`` patches) the deepest exit is granted, lowest last-stage
            scores first, only while the band's mean cost stays within ``max_cost`` x the deepest
            exit's; ``exit_costs`` are the exits' relative costs (MACs per patch). None: no cap.

    ``call({"image", "qmap"}, exit_index=None)``, as ``QGAUNet``: image in [0, 1] (B, H, W, C),
    Q-map (B, H, W, 1 or 2). Returns the list of all N exits (exit m with cluster m's texture
    module), or only exit ``exit_index`` (branches 0..exit_index run); exit c serves cluster c.
    Any H, W of at least ``stride / 2`` (8 px, or 32 px for the "transformer" texture with 64 px
    patches); padded inside at the bottom/right.
    Routing: ``cluster_map``, or ``cell_maps`` (defocus and routing value per cell) +
    ``clusters.assign_clusters`` on each patch's mean routing value; for "cascade",
    ``cascade_stage`` per branch and ``exit_from_features`` for the patches that stop.
    """

    def __init__(
        self,
        image_channels: int = 3,
        num_clusters: int = 3,
        widths=(32, 48, 96, 128),
        encoder_blocks=(1, 1, 1),
        bottleneck_blocks=(2, 2, 2),
        decoder_blocks=(1, 0, 0),
        texture: str = "cnn",
        stem_stride: int = 2,
        key_dim: int = 16,
        patch_size: int = 64,
        thresholds=None,
        defocus_widths=(16, 24, 32, 48),
        defocus_blocks=(1, 1, 1, 1),
        routing: str = "defocus",
        max_cost: float | None = None,
        exit_costs=None,
        block: str = "residual",
        **kwargs,
    ):
        super().__init__(**kwargs)
        n = num_clusters
        widths, encoder_blocks = tuple(widths), tuple(encoder_blocks)
        bottleneck_blocks, decoder_blocks = tuple(bottleneck_blocks), tuple(decoder_blocks)
        if n < 1 or len(widths) != n + 1:
            raise ValueError("need num_clusters >= 1 and len(widths) == num_clusters + 1")
        if not len(encoder_blocks) == len(bottleneck_blocks) == len(decoder_blocks) == n:
            raise ValueError("need one encoder/bottleneck/decoder block count per branch (num_clusters each)")
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 (grayscale) or 3 (RGB), got {image_channels}")
        if texture not in TEXTURES:
            raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
        if stem_stride not in (1, 2):
            raise ValueError("stem_stride must be 1 or 2")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {tuple(BLOCKS)}, got {block!r}")
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
        self.image_channels = image_channels
        self.qmap_channels = 1 if image_channels == 1 else 2
        self.num_clusters = n
        self.widths, self.encoder_blocks = widths, encoder_blocks
        self.bottleneck_blocks, self.decoder_blocks = bottleneck_blocks, decoder_blocks
        self.texture, self.stem_stride, self.key_dim, self.patch_size = texture, stem_stride, key_dim, patch_size
        self.defocus_widths, self.defocus_blocks = tuple(defocus_widths), tuple(defocus_blocks)
        self.routing = routing
        self.block = block
        if max_cost is not None and (routing != "cascade" or exit_costs is None or len(exit_costs) != n):
            raise ValueError("max_cost caps a cascade's compute: it needs routing 'cascade' and one exit_costs value per exit")
        self.max_cost = None if max_cost is None else float(max_cost)
        self.exit_costs = None if exit_costs is None else [float(c) for c in exit_costs]
        self.thresholds = default_thresholds(n) if thresholds is None else thresholds

        self.defocus_head = DefocusHead(self.defocus_widths, self.defocus_blocks, name="defocus_head")
        cell = self.defocus_head.cell_size
        self.routing_readout = RoutingReadout(cell, name="routing_readout") if routing == "readout" else None
        self.cascade_readouts = [CascadeReadout(name=f"cascade{m}") for m in range(n - 1)] if routing == "cascade" else []
        bottleneck = 2 * self.branch_scale(0)
        if patch_size % bottleneck or patch_size % cell:
            raise ValueError(f"patch_size {patch_size} must be a multiple of {bottleneck} (branch 0's bottleneck) and cell size {cell}")
        if texture == "transformer" and cell % self.branch_scale(0):
            raise ValueError(f"the defocus cell ({cell} px) must be a multiple of branch 0's scale {self.branch_scale(0)}")

        self.branches, self.textures, self.heads = [], [], []
        for m in range(n):
            scale, width = self.branch_scale(m), widths[n - 1 - m]
            self.branches.append(
                DAQEBranch(
                    width, widths[n - m], scale, takes_context=m > 0, encoder_blocks=encoder_blocks[m],
                    bottleneck_blocks=bottleneck_blocks[m], decoder_blocks=decoder_blocks[m], block=block,
                    name=f"branch{m}",
                )
            )
            if texture == "cnn":
                self.textures.append(make_block(block, width, name=f"texture{m}"))
            else:
                self.textures.append(
                    ClusterAttention(width, key_dim, cell // scale, patch_size // scale, name=f"texture{m}")
                )
            # Zero residual at start: every exit begins as the identity (the JPEG itself), as in QGAUNet.
            self.heads.append(
                layers.Conv2DTranspose(
                    image_channels, scale, strides=scale, kernel_initializer="zeros", name=f"exit{m}_head"
                )
            )

    @property
    def num_exits(self) -> int:
        """Exits, one per cluster (the name both model families share)."""
        return self.num_clusters

    def branch_scale(self, branch: int) -> int:
        """Input pixels per pixel side of ``branch``."""
        return self.stem_stride * 2 ** (self.num_clusters - 1 - branch)

    @property
    def stride(self) -> int:
        """Input sizes are padded internally to a multiple of this: branch 0's bottleneck, or whole
        patches for the "transformer" texture, whose reference regions are then the clustered patches."""
        return self.patch_size if self.texture == "transformer" else 2 * self.branch_scale(0)

    @property
    def thresholds(self) -> list[float]:
        """Ascending patch-defocus thresholds (log1p sigma) between clusters; stored in the config."""
        return list(self._thresholds)

    @thresholds.setter
    def thresholds(self, values):
        values = validate_thresholds(values)
        if values.size != self.num_clusters - 1:
            raise ValueError(f"need {self.num_clusters - 1} thresholds for {self.num_clusters} clusters")
        self._thresholds = tuple(float(v) for v in values)

    def build(self, input_shape):
        if isinstance(input_shape, dict):
            image_shape, qmap_shape = input_shape["image"], input_shape["qmap"]
        else:
            image_shape, qmap_shape = input_shape
        batch = image_shape[0]
        image_shape = (batch, None, None, self.image_channels)
        qmap_shape = (batch, None, None, self.qmap_channels)
        self.defocus_head.build([image_shape, qmap_shape])
        if self.routing_readout is not None:
            self.routing_readout.build([(batch, None, None, self.defocus_widths[-1]), qmap_shape])
        summary = 0
        for m, readout in enumerate(self.cascade_readouts):
            summary += 2 * self.branches[m].width
            readout.build([(batch, summary), (batch, 1)])
        for m, (branch, texture, head) in enumerate(zip(self.branches, self.textures, self.heads)):
            context = [(batch, None, None, self.branches[m - 1].width)] if m > 0 else []
            branch.build([image_shape, qmap_shape, *context])
            features = (batch, None, None, branch.width)
            texture.build(features)
            head.build(features)
        self.built = True

    def _split(self, inputs):
        if isinstance(inputs, dict):
            return inputs["image"], inputs["qmap"]
        return inputs[0], inputs[1]

    def call(self, inputs, exit_index=None):
        image, qmap = self._split(inputs)
        if exit_index is not None and not -self.num_exits <= exit_index < self.num_exits:
            raise ValueError(f"exit_index {exit_index} out of range for {self.num_exits} exits")
        last = self.num_exits - 1 if exit_index is None else exit_index % self.num_exits
        height, width = ops.shape(image)[1], ops.shape(image)[2]
        image_p = pad_to_multiple(image, self.stride)
        qmap_p = pad_to_multiple(qmap, self.stride)

        outputs, context = [], []
        for m in range(last + 1):
            features = self.branches[m]([image_p, qmap_p, *context])
            context = [features]
            if exit_index is None or m == last:
                residual = self.heads[m](self.textures[m](features))
                outputs.append(crop_to(image_p + residual, height, width))
        return outputs if exit_index is None else outputs[0]

    def cascade_stage(self, inputs, stage: int, context=None, summary=None):
        """Branch ``stage`` on a batch of patches -> (features, summary, score).

        ``context``/``summary``: what stage ``stage - 1`` returned (None for stage 0). ``summary``
        accumulates ``patch_summary`` of every branch so far; ``score`` (B, 1) is the stage's
        ``CascadeReadout`` (positive = leave through this exit), None for the deepest stage.
        Patches must be a multiple of ``stride`` (the patch plan's are).
        """
        if self.routing != "cascade":
            raise ValueError(f"cascade_stage needs routing 'cascade', this model routes by {self.routing!r}")
        if not 0 <= stage < self.num_exits or (stage > 0) != (context is not None) or (stage > 0) != (summary is not None):
            raise ValueError("stage 0 takes no context or summary; later stages take both from the stage before")
        image, qmap = self._split(inputs)
        features = self.branches[stage]([image, qmap, *([] if context is None else [context])])
        pooled = patch_summary(features)
        summary = pooled if summary is None else ops.concatenate([summary, pooled], axis=-1)
        if stage == self.num_exits - 1:
            return features, summary, None
        return features, summary, self.cascade_readouts[stage]([summary, qmap_summary(qmap)])

    def patch_summaries(self, inputs):
        """(B, D + 1): ``patch_summary`` of every branch in order, then the mean luma Q-map, per patch.

        What a cascade's stages read (stage m: the first summaries up to branch m, and the last
        column), for any routing: ``train.fit_thresholds`` fits the readouts on it.
        """
        image, qmap = self._split(inputs)
        image, qmap = pad_to_multiple(image, self.stride), pad_to_multiple(qmap, self.stride)
        context, summaries = [], []
        for branch in self.branches:
            features = branch([image, qmap, *context])
            context = [features]
            summaries.append(patch_summary(features))
        return ops.concatenate([*summaries, qmap_summary(qmap)], axis=-1)

    def exit_from_features(self, stage: int, features, image):
        """Exit ``stage``'s output from its branch's ``features`` (``cascade_stage``) and the patch ``image``."""
        return image + self.heads[stage](self.textures[stage](features))

    def defocus(self, inputs):
        """Predicted log1p(blur sigma) per defocus cell, (B, ceil(H/16), ceil(W/16), 1)."""
        return self.defocus_head(self._split(inputs))

    def cell_maps(self, inputs):
        """(B, ceil(H/16), ceil(W/16), 2): predicted defocus and the routing value per cell, one head pass.

        The routing value is the defocus itself, or the ``RoutingReadout`` of the head's features.
        """
        image, qmap = self._split(inputs)
        features = self.defocus_head.features([image, qmap])
        defocus = self.defocus_head.head(features)
        if self.routing_readout is None:
            return ops.concatenate([defocus, defocus], axis=-1)
        return ops.concatenate([defocus, self.routing_readout([features, qmap])], axis=-1)

    def cluster_map(self, inputs):
        """Cluster id (int32) per ``patch_size`` patch, (B, ceil(H/P), ceil(W/P)); (B, 1, 1) for a batch of patches."""
        if self.routing == "cascade":
            raise ValueError("a cascade decides per branch (cascade_stage): it has no cluster map before the branches run")
        patch_cells = self.patch_size // self.defocus_head.cell_size
        routing = self.cell_maps(inputs)[..., 1:]
        return assign_clusters_tensor(patch_defocus_from_map_tensor(routing, patch_cells), self.thresholds)

    def get_config(self):
        return {
            **super().get_config(),
            "image_channels": self.image_channels,
            "num_clusters": self.num_clusters,
            "widths": list(self.widths),
            "encoder_blocks": list(self.encoder_blocks),
            "bottleneck_blocks": list(self.bottleneck_blocks),
            "decoder_blocks": list(self.decoder_blocks),
            "texture": self.texture,
            "stem_stride": self.stem_stride,
            "key_dim": self.key_dim,
            "patch_size": self.patch_size,
            "thresholds": list(self.thresholds),
            "defocus_widths": list(self.defocus_widths),
            "defocus_blocks": list(self.defocus_blocks),
            "routing": self.routing,
            "max_cost": self.max_cost,
            "exit_costs": self.exit_costs,
            "block": self.block,
        }


def shared_weights(model: DAQENet) -> list:
    """The model's variables without its routing readouts': what every routing of one architecture shares."""
    readouts = ([] if model.routing_readout is None else [model.routing_readout]) + list(model.cascade_readouts)
    readout = {id(v) for layer in readouts for v in layer.weights}
    return [v for v in model.weights if id(v) not in readout]


def with_routing(model: DAQENet, routing: str, thresholds, readout: tuple | None = None,
                 max_cost: float | None = None, exit_costs=None) -> DAQENet:
    """A copy of ``model`` that clusters by ``routing`` with ``thresholds`` (in that signal's units).

    ``readout``: (weights, bias) of a fitted ``RoutingReadout`` (``routing_readout_fit``), needed
    for "readout"; for "cascade", one (weights, bias) per stage (``cascade_readout_fit``, the
    stage's threshold already subtracted from the bias), and optionally its compute cap
    (``max_cost``, ``exit_costs``). Every other weight is the model's own.
    """
    if (routing in ("readout", "cascade")) != (readout is not None):
        raise ValueError('fitted readouts are needed for routing "readout" and "cascade", and only for them')
    if routing == "cascade" and len(readout) != model.num_exits - 1:
        raise ValueError(f"a cascade needs one fitted readout per stage ({model.num_exits - 1}), got {len(readout)}")
    config = {**model.get_config(), "routing": routing, "thresholds": [float(t) for t in thresholds],
              "max_cost": max_cost, "exit_costs": exit_costs}
    copy = DAQENet.from_config(config)
    copy.build({"image": (None, None, None, model.image_channels), "qmap": (None, None, None, model.qmap_channels)})
    for target, source in zip(shared_weights(copy), shared_weights(model), strict=True):
        target.assign(source)
    if routing == "readout":
        copy.routing_readout.set_linear(*readout)
    for layer, fitted in zip(copy.cascade_readouts, readout if routing == "cascade" else []):
        layer.set_linear(*fitted)
    return copy
