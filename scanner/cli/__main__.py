"""``python -m scanner.cli`` runs the pledgescan CLI too (as ``python -m scanner``)."""

from scanner.cli.main import main

main()
