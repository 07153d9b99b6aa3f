"""`python -m higgs_lora.cli` = `higgs-lora`."""

import sys

from . import main

sys.exit(main())
