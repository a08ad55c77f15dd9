"""The ``seamline`` command. A face, not a dependency: nothing imports it."""
