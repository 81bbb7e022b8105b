"""python -m hub.demo.pudong OUT_DIR [--seed N] [--scale F] [--bootstrap HOST:PORT]"""

import sys

from hub.demo.pudong import main

sys.exit(main())
