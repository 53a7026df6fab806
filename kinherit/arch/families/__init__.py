"""One module per model family; importing this package registers every one of them.

Adding a family means adding one file here that calls `catalog.register_family(FamilySpec(...))`:
the tensor table, the config builder, the classifier head and the reference live in that record.
Modules starting with `_` hold pieces shared by several families and register nothing.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
