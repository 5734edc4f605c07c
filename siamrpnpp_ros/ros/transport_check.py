"""Old path of ``python -m siamrpnpp_ros.tools.transport_check``, kept for existing scripts."""

import sys

from siamrpnpp_ros.tools.transport_check import main

if __name__ == "__main__":
    sys.exit(main())
