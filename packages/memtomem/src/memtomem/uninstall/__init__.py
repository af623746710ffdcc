"""The transactional removal of memtomem's local state (`mm uninstall`)."""
