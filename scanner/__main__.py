"""``python -m scanner`` runs the pledgescan CLI."""

from scanner.cli.main import main

main()
