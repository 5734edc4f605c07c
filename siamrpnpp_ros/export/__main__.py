"""``python -m siamrpnpp_ros.export`` = ``siamrpnpp-export``."""

import sys

from .onnx import main

sys.exit(main())
