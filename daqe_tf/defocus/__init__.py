"""Classical defocus maps used as pseudo labels for the DAQE defocus head, and their cache."""
from daqe_tf.defocus.cache import DefocusLabelCache
from daqe_tf.defocus.estimator import ESTIMATOR_VERSION, estimate_defocus_map, patch_defocus

__all__ = ["DefocusLabelCache", "ESTIMATOR_VERSION", "estimate_defocus_map", "patch_defocus"]
