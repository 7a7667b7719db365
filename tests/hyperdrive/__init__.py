"""HyperDrive tests (a package, so test modules may share names with other folders' tests)."""
