#!/usr/bin/env python3
"""`make demo`: the tracker node fed by a camera player, boxes printed and filmed.

See siamrpnpp_ros/tools/demo.py for the options (python tools/demo.py --help).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siamrpnpp_ros.tools.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
