"""Former name of the routing runtime: this module is ``daqe_tf.routing.runtime`` itself."""
import sys

from daqe_tf.routing import runtime

sys.modules[__name__] = runtime
