"""``python -m seamline``: the same as the ``seamline`` command."""

from seamline.cli.main import main

main()
