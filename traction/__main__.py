"""``python -m traction`` runs the command line."""

from traction.cli import main

main()
