package jetstream

// OnApply has f called after each record of the tokens bucket the
// watcher applies, so that a test awaits a change instead of sleeping.
func OnApply(t *Tokens, f func()) { t.onApply.Store(&f) }
