"""`python -m higgs_lora COMMAND ...`: the `higgs-lora` command where the package is not installed (e.g. on PYTHONPATH)."""

import sys

from .cli import main

sys.exit(main())
