"""The test suite as a package: shared helpers are imported by their dotted path from the
repository root (``from tests.unit.fakes import ...``), and two test modules in different folders
may share a name (tests/unit/<package path>/test_<module>.py)."""
