"""The terminal console, ``qiki console`` (Textual): live over the gateway, or a recorded run.

:mod:`~controller.console.tui.view` is the console's picture of the vehicle (pure data),
:mod:`~controller.console.tui.sources` fills it from the gateway or from a ``run.mcap``,
:mod:`~controller.console.tui.widgets` draws it and :mod:`~controller.console.tui.app`
is the application (docs/console.md).
"""
