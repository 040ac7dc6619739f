"""``python -m ostinato``: the ``ostinato`` command line."""

from ostinato.cli import main

if __name__ == "__main__":
    main()
