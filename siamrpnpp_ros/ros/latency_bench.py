"""Old path of ``python -m siamrpnpp_ros.tools.latency_bench``, kept for existing scripts."""

import sys

from siamrpnpp_ros.tools.latency_bench import main

if __name__ == "__main__":
    sys.exit(main())
