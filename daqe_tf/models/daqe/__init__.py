"""DAQE: defocus-aware dynamic enhancement (defocus head, clusters, progressive branches)."""
from daqe_tf.models.daqe.branches import DAQEBranch
from daqe_tf.models.daqe.cascade_readout import CascadeReadout
from daqe_tf.models.daqe.clusters import (
    assign_clusters,
    assign_clusters_tensor,
    fit_thresholds,
    patch_defocus_from_map,
    patch_defocus_from_map_tensor,
)
from daqe_tf.models.daqe.defocus_head import DefocusHead, defocus_cell_targets
from daqe_tf.models.daqe.model import DAQENet, shared_weights, with_routing
from daqe_tf.models.daqe.routing_readout import RoutingReadout
from daqe_tf.routing.calibration import cascade_gain, cascade_readout_fit, routing_readout_fit

__all__ = [
    "CascadeReadout",
    "DAQEBranch",
    "DAQENet",
    "DefocusHead",
    "RoutingReadout",
    "assign_clusters",
    "assign_clusters_tensor",
    "cascade_gain",
    "cascade_readout_fit",
    "defocus_cell_targets",
    "fit_thresholds",
    "patch_defocus_from_map",
    "patch_defocus_from_map_tensor",
    "routing_readout_fit",
    "shared_weights",
    "with_routing",
]
