"""`python -m resolver_mesh` runs the command-line interface."""

import sys

from resolver_mesh.cli import console

sys.exit(console())
