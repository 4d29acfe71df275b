"""The vulnerability knowledge base: feed importers, import pipeline, online sync, feed status.

    from garrison.tvm.kb import import_paths, sync, feeds_status, load_starter

Importers are plugins registered by name (:func:`register_importer`); each recognises its format
from the content of a file and yields normalised records (:mod:`garrison.tvm.kb.records`).
"""

from garrison.tvm.kb.online import SyncResult, sync
from garrison.tvm.kb.pipeline import ImportResult, import_bytes, import_paths
from garrison.tvm.kb.registry import Importer, detect, get_importer, importers, register_importer
from garrison.tvm.kb.starter import load_starter
from garrison.tvm.kb.status import feeds_status

__all__ = [
    "ImportResult",
    "Importer",
    "SyncResult",
    "detect",
    "feeds_status",
    "get_importer",
    "import_bytes",
    "import_paths",
    "importers",
    "load_starter",
    "register_importer",
    "sync",
]
