"""Classical defocus maps used as pseudo labels for the DAQE defocus head."""
from daqe_tf.defocus.estimator import ESTIMATOR_VERSION, estimate_defocus_map, patch_defocus

__all__ = ["ESTIMATOR_VERSION", "estimate_defocus_map", "patch_defocus"]
