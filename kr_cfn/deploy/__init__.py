"""The deploy and day-two subcommands' wiring: arguments (parsers, args) and commands.

The work is done by :mod:`kr_cfn.changes` (the change-set engine) and :mod:`kr_cfn.operations` (day two);
never imports ``stacks``.
"""
