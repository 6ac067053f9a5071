package atomicfile

// syncDir does nothing on Windows, which has no fsync of a directory;
// NTFS journals the rename itself.
func syncDir(string) error { return nil }
