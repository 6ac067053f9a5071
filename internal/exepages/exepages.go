// Package exepages gives back the pages of the running executable that
// the process holds only because it touched them once.
//
// Linux maps a program's code and read-only data on demand, and on each
// fault it maps the cached pages around the one asked for as well (fault
// around, 64 KiB). Start-up runs every package's initialisation, spread
// over the whole binary, so a Go program that then sleeps holds nearly
// all of its file in its resident set: hark's idle tray held 9.5 of its
// 14.3 MiB that way, code it had run once and would not run again.
// Release unmaps those pages: they stay in the page cache, clean and
// shared with the file, where the kernel may reclaim them first, and a
// page needed again is mapped back on its next use, from the cache (a
// minor fault) or the disk.
package exepages
