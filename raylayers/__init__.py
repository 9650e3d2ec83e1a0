"""raylayers: which vision-encoder layers should a LLaVA-style model see?

Library modules import without side effects; the command line lives in `raylayers.cli`.
"""

__version__ = "0.1.0"
