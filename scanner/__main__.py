"""``python -m scanner`` runs the pledgescan CLI."""

from scanner.cli.main import main

if __name__ == "__main__":  # not when a scanning process (spawn) imports it
    main()
