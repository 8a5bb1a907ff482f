"""`python -m bpcli` runs the CLI."""

from bpcli.cli import main

if __name__ == "__main__":
    main()
