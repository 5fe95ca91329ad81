"""Routing: which exit each 128-px patch leaves through, in one place.

``policy``: the rules in numpy (clusters by thresholds, budgets, the cascade's compute cap);
``calibration``: fitting them and the routing readouts on a trained model's own predictions;
``runtime``: a whole image routed patch by patch through a Keras or LiteRT model;
``pictures``: the defocus map and the exits as images. The Keras layers of the readouts stay
with the model (``daqe_tf.models.daqe``).
"""
