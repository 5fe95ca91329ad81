"""``python -m daqe_tf`` is the ``daqe`` command."""
import sys

from daqe_tf.cli import main

sys.exit(main())
