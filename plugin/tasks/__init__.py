"""QgsTask wrappers: copy inputs on the main thread, compute in run(), report in finished()."""
