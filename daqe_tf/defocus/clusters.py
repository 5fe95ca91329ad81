"""Former name of the routing policy: this module is ``daqe_tf.routing.policy`` itself."""
import sys

from daqe_tf.routing import policy

sys.modules[__name__] = policy
