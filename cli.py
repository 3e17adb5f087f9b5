"""Shim so that ``python cli.py ...`` behaves exactly like the installed ``vtrial`` command."""

from vtrial.cli import main

if __name__ == "__main__":
    main()
