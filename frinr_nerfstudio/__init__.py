"""frinr_nerfstudio: nerfstudio methods whose MLP heads use Fourier reparameterized layers, in three parts.

- ``method/``: what a reader of the paper looks for, the registered methods (configs, heads, fields, models,
  the occupancy-grid sampler, our pipelines);
- ``nerfstudio_fixes/``: everything that changes nerfstudio's behaviour, applied by one version-checked ``install()``;
- ``tools/``: ``frinr compare`` (with its child runs), ``frinr export``, ``frinr make-scene``, ``frinr gpu-check``.

Imports go tools → method → nerfstudio_fixes → frinr_core, never back.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

_MOVED = {
    **{name: "method" for name in ("config", "heads", "samplers", "pipelines", "fields", "models", "field_components")},
    **{name: "nerfstudio_fixes" for name in ("backends", "datacheck", "distributed")},
    **{name: "tools" for name in ("budgeted", "compare", "export", "scene")},
}
"""Modules that lived directly in this package before 2026-12. A run's config.yml names the classes it was built from
by module path (``!!python/object:frinr_nerfstudio.models.ngp.NGPModelConfig``), so runs trained before the move must
still find them there."""


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path to the module at its new place (the same module object, so the same classes)."""

    @staticmethod
    def new_name(name: str) -> str | None:
        package, _, rest = name.partition(".")
        first = rest.split(".")[0]
        return f"{package}.{_MOVED[first]}.{rest}" if package == __name__ and first in _MOVED else None

    def find_spec(self, name, path, target=None):
        new = self.new_name(name)
        return importlib.util.spec_from_loader(name, self) if new else None

    def create_module(self, spec):
        return importlib.import_module(self.new_name(spec.name))

    def exec_module(self, module) -> None:
        pass  # already executed under its new name


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # first: the old names would otherwise load twice via the new paths
