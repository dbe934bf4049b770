"""``python -m scanner`` runs the pledgescan CLI."""

from scanner.cli import main

main()
