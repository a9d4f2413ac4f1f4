"""Test helpers shared by test folders (import as ``support.<module>``: pytest puts
``tests/`` on ``sys.path`` because ``tests/conftest.py`` is a rootdir conftest)."""
