"""Feed importers; every module here is imported and registers its importer class."""
