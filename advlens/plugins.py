"""The one place where advlens reaches code outside itself: plugins.

A plugin is a callable named by an entry point of the group ``advlens.plugins``; calling it
registers what the plugin brings (architectures with :func:`advlens.models.registry.register_architecture`,
training objectives with :func:`advlens.training.objectives.register`). The project's own
``defenses`` package is such a plugin, declared in ``pyproject.toml``::

    [project.entry-points."advlens.plugins"]
    defenses = "defenses.plugin:register"

The architecture and objective registries call :func:`load_plugins` before they answer, so a
checkpoint of a defended network loads and ``--objective trades`` works without anyone importing
``defenses`` by hand. From a source tree that was never installed (no entry-point metadata), the
built-in list below is used. Nothing else in advlens imports ``defenses``, and ``defenses``
imports advlens freely: the dependency runs one way, and this loader closes the loop at run time.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points

GROUP = "advlens.plugins"
BUILTIN = (EntryPoint("defenses", "defenses.plugin:register", GROUP),)

_lock = threading.RLock()
_loaded: list[str] | None = None


def plugin_entry_points() -> list[EntryPoint]:
    """The installed plugins, or the built-in ones when advlens runs uninstalled."""
    found = list(entry_points(group=GROUP))
    return sorted(found or BUILTIN, key=lambda ep: ep.name)


def load_plugins() -> list[str]:
    """Load every plugin once per process (thread-safe); returns their names."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return list(_loaded)
        _loaded = []  # set first: a plugin's imports may ask a registry, which calls back here
        for ep in plugin_entry_points():
            load_plugin(ep)
            _loaded.append(ep.name)
        return list(_loaded)


def load_plugin(ep: EntryPoint) -> None:
    """Import the object ``ep`` names (``package.module:function``) and call it: what
    :func:`load_plugins` does for each installed plugin."""
    ep.load()()
