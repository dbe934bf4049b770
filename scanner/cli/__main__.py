"""``python -m scanner.cli`` runs the pledgescan CLI too (as ``python -m scanner``)."""

from scanner.cli.main import main

if __name__ == "__main__":  # not when a scanning process (spawn) imports it
    main()
