"""``python -m siamrpnpp_ros.tools.console``: see ``main``."""

import sys

from siamrpnpp_ros.tools.console.main import main

sys.exit(main(sys.argv))
