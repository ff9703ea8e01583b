from __future__ import annotations

import sys

from .soak import main

sys.exit(main())
